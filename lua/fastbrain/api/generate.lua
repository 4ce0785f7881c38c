-- fastbrain.api.generate: new training examples for a skill from the provider chain, as a
-- task the dashboard can watch: POST /api/skills/:skill/generate {count} (202, or 409 while one
-- runs for that skill), GET .../generate (the latest task, or null) and GET .../generate/events (SSE:
-- a snapshot, then progress, done or error, each carrying the task: kept, dropped by reason,
-- kept by provider, the provider in use and every fallback with its reason). Tasks run in a
-- coroutine on the loop (the provider calls yield), one per skill at a time. A skill's latest
-- task is also kept in skills/<id>/generate.json (fastbrain.tasks), so a restarted server still
-- shows it; one the server stopped in the middle reads failed.
local fb = require "fastbrain"
local skills = require "fastbrain.api.skills"
local gendata = require "fastbrain.gendata"
local tasks = require "fastbrain.tasks"

local M = {MAX_COUNT = 200}

local function public(task)
  return {id = task.id, skill = task.skill, state = task.state, count = task.count,
          kept = task.kept, dropped = task.dropped, by_provider = task.by_provider,
          fallbacks = task.fallbacks, provider = task.provider or fb.json.null,
          error = task.error or fb.json.null}
end

local function update(task, report)
  task.kept, task.dropped, task.by_provider, task.fallbacks, task.provider = report.kept,
    report.dropped, report.by_provider, report.fallbacks, report.provider
end

local function run(board, task, ctx, skill)
  local report, err = gendata.generate{
    chain = ctx.chain, skill = skill, data_path = skills.data_path(ctx.data_dir, skill.id),
    count = task.count, batch = task.batch,
    on_progress = function(r) update(task, r); board:emit(task, "progress") end,
  }
  if report then update(task, report) end
  task.error = err or report.error
  task.state = (report and report.kept >= task.count) and "succeeded" or "failed"
  board:save(task)
  board:emit(task, task.state == "succeeded" and "done" or "error")
end

-- mount(app, {data_dir =, chain = a fastbrain.fallback chain})
function M.mount(app, ctx)
  local board = tasks.board{what = "generate", public = public,
                            file = function(id) return skills.dir(ctx.data_dir, id) .. "/generate.json" end}
  app:post("/api/skills/:skill/generate", function(req, res)
    local skill, count, body = skills.counted(ctx.data_dir, req, M.MAX_COUNT)
    if not skill then return res:json(400, count) end
    local task, live = board:start(skill.id, {skill = skill.id, state = "running", count = count, kept = 0,
                                              dropped = {}, by_provider = {}, fallbacks = fb.json.array(),
                                              batch = math.tointeger(body.batch) or 5}, run, ctx, skill)
    if not task then return res:json(409, {error = "generation already running", task = public(live)}) end
    res:json(202, {task = public(task)})
  end)

  app:get("/api/skills/:skill/generate", function(req, res)
    local task = board:latest(skills.require(ctx.data_dir, req.params.skill).id)
    res:json(200, {task = task and public(task) or fb.json.null})
  end)

  app:get("/api/skills/:skill/generate/events", function(req, res)
    board:watch(res, skills.check_id(req.params.skill))
  end)
end

return M
