-- fastbrain.api.scenario_runs: scenario runs (fastbrain.scenario_runs) over HTTP, and the run
-- every finished training job's adapter gets.
--   POST /api/skills/:skill/scenario-runs {target = "base"}, {version = V} or {job = ID, step =
--                                            N} (a job's checkpoint; and judge = false to leave
--                                            rubrics unjudged): 202 {run}, queued
--   GET  /api/skills/:skill/checkpoints      {checkpoints}: [{job, step, job_state, created_at}]
--   GET  /api/skills/:skill/scenario-runs                 {runs}: summaries, newest first
--   GET  /api/skills/:skill/scenario-runs/events          SSE: queued, progress, done, error,
--                                                         cancelled, each with the run's summary
--   GET  /api/skills/:skill/scenario-runs/:id             {run}: with every answer and verdict
--   POST /api/skills/:skill/scenario-runs/:id/cancel      200 {run}; 409 once it has ended
local fb = require "fastbrain"
local router = require "fastbrain.router"
local checkpoints = require "fastbrain.checkpoints"
local scenarios_api = require "fastbrain.api.scenarios"
local skills = require "fastbrain.api.skills"

local M = {}

local TARGETS = 'target: "base", version: an adapter version of the skill, or job and step: a checkpoint'

local function target_of(body)
  if type(body) ~= "table" then router.fail(400, "body: an object expected (" .. TARGETS .. ")") end
  if body.target == "base" then return {kind = "base"} end
  if body.job ~= nil then
    if type(body.job) ~= "string" or not body.job:match("^[%w_-]+$") then router.fail(400, "job: a job id expected") end
    if math.type(body.step) ~= "integer" or body.step < 0 then router.fail(400, "step: a checkpoint's step expected") end
    return {kind = "checkpoint", job = body.job, step = body.step}
  end
  if type(body.version) == "string" and body.version:match("^[%w_][%w_.-]*$") and not body.version:find("..", 1, true) then
    return {kind = "adapter", version = body.version}
  end
  router.fail(400, TARGETS)
end

-- After a training job's adapter is written, its skill's scenarios run on it (when it has some).
local function run_after_training(runs, data_dir)
  return fb.jobs.subscribe("*", function(ev)
    if ev.event ~= "done" or type(ev.adapter) ~= "string" then return end
    local list = scenarios_api.read(data_dir, ev.skill)
    if not list or #list == 0 then return end
    local run, err = runs:start(ev.skill, {kind = "adapter", version = ev.adapter:match("([^/]+)/*$")})
    if not run then fb.log.warn("scenario runs: after job %s: %s", tostring(ev.job), err) end
  end)
end

-- mount(app, {data_dir =, runs = a fastbrain.scenario_runs})
function M.mount(app, ctx)
  local data_dir, runs = ctx.data_dir, ctx.runs
  local base = "/api/skills/:skill/scenario-runs"
  runs.after_training = run_after_training(runs, data_dir)

  app:post(base, function(req, res)
    local skill = skills.require(data_dir, req.params.skill)
    local body = req:json()
    local run, err, status = runs:start(skill.id, target_of(body), {judge = type(body) == "table" and body.judge})
    if not run then router.fail(status, err) end
    res:json(202, {run = run})
  end)

  app:get("/api/skills/:skill/checkpoints", function(req, res)
    res:json(200, {checkpoints = checkpoints.list(data_dir, skills.require(data_dir, req.params.skill).id)})
  end)

  app:get(base, function(req, res)
    res:json(200, {runs = runs:list(skills.require(data_dir, req.params.skill).id)})
  end)

  app:get(base .. "/events", function(req, res)
    local id = skills.check_id(req.params.skill)
    local stream = res:sse()
    if not stream then return end
    stream:on_close(runs:listen(id, function(event, summary) stream:send(event, summary) end))
    stream:send("snapshot", {runs = runs:list(id)})
  end)

  app:get(base .. "/:id", function(req, res)
    local run = runs:get(skills.check_id(req.params.skill), req.params.id)
    if not run then router.fail(404, "no run " .. req.params.id) end
    res:json(200, {run = run})
  end)

  app:post(base .. "/:id/cancel", function(req, res)
    local skill = skills.check_id(req.params.skill)
    if not runs:get(skill, req.params.id) then router.fail(404, "no run " .. req.params.id) end
    local run, err = runs:cancel(skill, req.params.id)
    if not run then router.fail(409, err) end
    res:json(200, {run = run})
  end)
end

return M
