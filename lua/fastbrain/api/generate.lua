-- fastbrain.api.generate: new training examples for a skill from the provider chain, as a
-- task the dashboard can watch: POST /api/skills/:skill/generate {count} (202, or 409 while one
-- runs for that skill), GET .../generate (the latest task, or null) and GET .../generate/events (SSE:
-- a snapshot, then progress, done or error, each carrying the task: kept, dropped by reason,
-- kept by provider, the provider in use and every fallback with its reason). Tasks run in a
-- coroutine on the loop (the provider calls yield), one per skill at a time. A skill's latest
-- task is also kept in skills/<id>/generate.json, replaced atomically when it starts and ends,
-- so a restarted server still shows it; one the server stopped in the middle reads failed.
local fb = require "fastbrain"
local skills = require "fastbrain.api.skills"
local gendata = require "fastbrain.gendata"

local M = {MAX_COUNT = 200}

local tasks = {}        -- skill -> the latest task (false: none on disk either)
local listeners = {}    -- skill -> {stream = true}
local next_id = 0

local function public(task)
  return {id = task.id, skill = task.skill, state = task.state, count = task.count,
          kept = task.kept, dropped = task.dropped, by_provider = task.by_provider,
          fallbacks = task.fallbacks, provider = task.provider or fb.json.null,
          error = task.error or fb.json.null}
end

local function task_path(data_dir, id) return skills.dir(data_dir, id) .. "/generate.json" end

local function save(data_dir, task)
  local ok, err = fb.fs.write_atomic(task_path(data_dir, task.skill), fb.json.encode(public(task)))
  if not ok then fb.log.warn("generate: the task of %s was not saved: %s", task.skill, err) end
end

-- The skill's latest task: this server's, else the one saved by an earlier server (a task it
-- was running when it stopped failed there) -> task | nil
local function latest(data_dir, id)
  if tasks[id] == nil then
    local text = fb.fs.read(task_path(data_dir, id))
    local ok, task = pcall(fb.json.decode, text or "")
    if not (text and ok and type(task) == "table" and math.tointeger(task.id)) then
      if text then fb.log.warn("generate: %s is not a saved task; ignored", task_path(data_dir, id)) end
      task = false
    elseif task.state == "running" then
      task.state, task.error = "failed", "interrupted: the server stopped while it ran"
    end
    tasks[id] = task
    if task then next_id = math.max(next_id, task.id) end
  end
  return tasks[id] or nil
end

local function emit(task, event)
  for stream in pairs(listeners[task.skill] or {}) do stream:send(event, public(task)) end
end

local function update(task, report)
  task.kept, task.dropped, task.by_provider, task.fallbacks, task.provider = report.kept,
    report.dropped, report.by_provider, report.fallbacks, report.provider
end

local function run(task, ctx, skill)
  local report, err = gendata.generate{
    chain = ctx.chain, skill = skill, data_path = skills.data_path(ctx.data_dir, skill.id),
    count = task.count, batch = task.batch,
    on_progress = function(r) update(task, r); emit(task, "progress") end,
  }
  if report then update(task, report) end
  task.error = err or report.error
  task.state = (report and report.kept >= task.count) and "succeeded" or "failed"
  save(ctx.data_dir, task)
  emit(task, task.state == "succeeded" and "done" or "error")
end

-- mount(app, {data_dir =, chain = a fastbrain.fallback chain})
function M.mount(app, ctx)
  app:post("/api/skills/:skill/generate", function(req, res)
    local skill = skills.require(ctx.data_dir, req.params.skill)
    local body = req:json()
    local count = type(body) == "table" and math.tointeger(body.count)
    if not count or count < 1 or count > M.MAX_COUNT then
      return res:json(400, {error = "invalid request", fields = {count = ("an integer 1..%d"):format(M.MAX_COUNT)}})
    end
    local live = latest(ctx.data_dir, skill.id)
    if live and live.state == "running" then
      return res:json(409, {error = "generation already running", task = public(live)})
    end
    next_id = next_id + 1
    local task = {id = next_id, skill = skill.id, state = "running", count = count, kept = 0,
                  dropped = {}, by_provider = {}, fallbacks = fb.json.array(), batch = math.tointeger(body.batch) or 5}
    tasks[skill.id] = task
    save(ctx.data_dir, task)
    fb.spawn(run, task, ctx, skill)
    res:json(202, {task = public(task)})
  end)

  app:get("/api/skills/:skill/generate", function(req, res)
    local task = latest(ctx.data_dir, skills.require(ctx.data_dir, req.params.skill).id)
    res:json(200, {task = task and public(task) or fb.json.null})
  end)

  app:get("/api/skills/:skill/generate/events", function(req, res)
    local id = skills.check_id(req.params.skill)
    local stream = res:sse()
    if not stream then return end
    listeners[id] = listeners[id] or {}
    listeners[id][stream] = true
    stream:on_close(function() listeners[id][stream] = nil end)
    local task = latest(ctx.data_dir, id)
    if task then stream:send("snapshot", public(task)) end
  end)
end

return M
