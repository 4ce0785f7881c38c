-- fastbrain.api.generate: new training examples for a skill from the provider chain, as a
-- task the dashboard can watch: POST /api/skills/:skill/generate {count, batch} (202, or 409 while
-- one runs for that skill), POST .../generate/cancel (202; it stops before its next provider
-- call), GET .../generate (the latest task, or null) and GET .../generate/events (SSE: a
-- snapshot, then progress, done, cancelled or error, each carrying the task: kept, dropped by
-- reason, kept by provider, provider calls made, the provider in use and every fallback with its
-- reason). A task makes at most gendata.MAX_CALLS provider calls. Tasks run in a
-- coroutine on the loop (the provider calls yield), one per skill at a time. A skill's latest
-- task is also kept in skills/<id>/generate.json (fastbrain.tasks), so a restarted server still
-- shows it; one the server stopped in the middle reads failed.
local fb = require "fastbrain"
local skills = require "fastbrain.api.skills"
local store = require "fastbrain.skills"
local gendata = require "fastbrain.gendata"
local tasks = require "fastbrain.tasks"

local M = {MAX_COUNT = 200, MAX_BATCH = 20}

local function public(task)
  return {id = task.id, skill = task.skill, state = task.state, count = task.count,
          kept = task.kept, dropped = task.dropped, by_provider = task.by_provider,
          fallbacks = task.fallbacks, provider = task.provider or fb.json.null, calls = task.calls or 0,
          error = task.error or fb.json.null}
end

local function update(task, report)
  task.kept, task.dropped, task.by_provider, task.fallbacks, task.provider, task.calls = report.kept,
    report.dropped, report.by_provider, report.fallbacks, report.provider, report.calls
end

local function run(board, task, ctx, skill)
  local report, err = gendata.generate{
    chain = ctx.chain, skill = skill, data_path = store.data_path(ctx.data_dir, skill.id),
    count = task.count, batch = task.batch,
    on_progress = function(r) update(task, r); board:emit(task, "progress") end,
    stopped = function() return task.cancelled end,
  }
  if report then update(task, report) end
  task.error = err or report.error
  if task.cancelled then task.state, task.error = "cancelled", fb.json.null
  else task.state = (report and report.kept >= task.count) and "succeeded" or "failed" end
  if task.state == "failed" and not task.error then
    task.error = ("%d of %d kept after %d provider calls"):format(task.kept, task.count, task.calls)
  end
  board:save(task)
  board:emit(task, task.state == "succeeded" and "done" or task.state == "cancelled" and "cancelled" or "error")
end

-- mount(app, {data_dir =, chain = a fastbrain.fallback chain})
function M.mount(app, ctx)
  local board = tasks.board{what = "generate", public = public,
                            file = function(id) return store.dir(ctx.data_dir, id) .. "/generate.json" end}
  app:post("/api/skills/:skill/generate", function(req, res)
    local skill, count, body = skills.counted(ctx.data_dir, req, M.MAX_COUNT)
    if not skill then return res:json(400, count) end
    local batch = body.batch == nil and 5 or type(body.batch) == "number" and math.tointeger(body.batch)
    if not batch or batch < 1 or batch > M.MAX_BATCH then
      return res:json(400, {error = "invalid request", fields = {batch = ("an integer 1..%d"):format(M.MAX_BATCH)}})
    end
    local task, live = board:start(skill.id, {skill = skill.id, state = "running", count = count, kept = 0,
                                              dropped = {}, by_provider = {}, fallbacks = fb.json.array(),
                                              batch = batch}, run, ctx, skill)
    if not task then return res:json(409, {error = "generation already running", task = public(live)}) end
    res:json(202, {task = public(task)})
  end)

  app:get("/api/skills/:skill/generate", function(req, res)
    local task = board:latest(skills.require(ctx.data_dir, req.params.skill).id)
    res:json(200, {task = task and public(task) or fb.json.null})
  end)

  app:post("/api/skills/:skill/generate/cancel", function(req, res)
    local task = board:latest(skills.require(ctx.data_dir, req.params.skill).id)
    if not (task and task.state == "running") then
      return res:json(409, {error = "no generation is running", task = task and public(task) or fb.json.null})
    end
    task.cancelled = true  -- it stops before its next provider call
    res:json(202, {task = public(task)})
  end)

  app:get("/api/skills/:skill/generate/events", function(req, res)
    board:watch(res, skills.check_id(req.params.skill))
  end)
end

return M
