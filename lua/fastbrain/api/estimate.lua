-- fastbrain.api.estimate: GET /api/training/estimate/:skill[?model=ID], what a run of the skill
-- would cost on this machine before it starts (fastbrain.estimate: tokens per epoch with the
-- model's tokenizer, steps, peak memory, time on the CPU and GPU, whether it fits, warnings);
-- POST the same with a body of spec overrides, as POST /api/train-skill/:skill takes them.
-- ID is a model id (fastbrain.models); absent, the skill's base model. The work, a first
-- calibration of the model's shape included, runs in a child (`fastbrain train --estimate`)
-- while the server serves on; identical requests meanwhile share that child, and other ones wait
-- for it: one at a time, a calibration measures this machine alone.
local fb = require "fastbrain"
local models = require "fastbrain.models"
local process = require "fastbrain.process"
local router = require "fastbrain.router"
local skills = require "fastbrain.api.skills"
local training = require "fastbrain.api.training"
local train = require "fastbrain.train"
local json = fb.json

local M = {TIMEOUT_MS = 30 * 60 * 1000} -- a first calibration of a large model takes minutes

local EXE = process.exepath()

-- Run the estimate of spec in a child -> status, body.
local function estimate(spec)
  local path = os.tmpname()
  local ok, err = fb.fs.write_atomic(path, json.encode(spec))
  if not ok then return 500, {error = err} end
  local r, perr = process.run{argv = {EXE, "--log-level", "warn", "train", "--spec", path, "--estimate", "--json"},
                              timeout_ms = M.TIMEOUT_MS}
  os.remove(path)
  if not r then return 500, {error = "cannot start the estimate: " .. perr} end
  if r.timed_out then return 504, {error = "the estimate took too long"} end
  if r.code ~= 0 then
    local last = r.stderr:match("([^\n]*)\n*$"):gsub("^fastbrain train %-%-estimate: ", "")
    return 422, {error = last ~= "" and last or "the estimate failed (exit status " .. tostring(r.code) .. ")"}
  end
  local dok, body = pcall(json.decode, r.stdout)
  if not dok then return 500, {error = "the estimate printed no result"} end
  return 200, {estimate = body}
end

-- mount(app, {data_dir =, model = the default base model})
function M.mount(app, ctx)
  local data_dir = ctx.data_dir
  local inflight = {} -- spec JSON -> {done, status, body}
  local busy = false   -- a child is estimating

  -- The estimate of spec in a coroutine of its own: a request that goes away leaves it to
  -- finish for the others waiting on it.
  local function start(spec)
    local key, run = json.encode(spec), {}
    inflight[key] = run
    fb.spawn(function()
      while busy do fb.sleep(50) end
      busy = true
      local ok, status, body = pcall(estimate, spec)
      busy = false
      inflight[key] = nil
      run.status, run.body, run.done = ok and status or 500, ok and body or {error = tostring(status)}, true
    end)
    return run
  end

  local function handler(req, res)
    local skill = skills.require(data_dir, req.params.skill)
    local overrides = req.method == "POST" and req.body ~= "" and req:json() or {}
    local errors = train.check_request(overrides)
    if errors then return skills.bad_fields(res, "invalid training spec", errors) end
    local id, name = req.query.model, nil
    if id then
      local err
      name, err = models.path(id, data_dir)
      if not name then router.fail(404, err) end
    end
    local spec = training.spec(data_dir, ctx.model, skill, overrides, name)
    if not fb.fs.mode(spec.data) then router.fail(422, "the skill has no examples yet") end
    spec.skill = nil -- the registry's, not the trainer's
    local run = inflight[json.encode(spec)] or start(spec)
    while not run.done do fb.sleep(50) end
    if run.status == 200 then run.body.estimate.model = id or models.id(spec.model, data_dir) end
    res:json(run.status, run.body)
  end
  local opts = {timeout = M.TIMEOUT_MS + 5000}
  app:get("/api/training/estimate/:skill", handler, opts)
  app:post("/api/training/estimate/:skill", handler, opts)
end

return M
