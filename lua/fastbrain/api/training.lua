-- fastbrain.api.training: a skill's training over fastbrain.jobs: POST /api/train-skill/:skill
-- (202, or 409 with the live job), the defaults a run gets and the fields a request may set,
-- its status (with the finished adapter's badge), its recent activity (the log tail), its
-- events as SSE (a snapshot, then every event; ids "<job>:<seq>", so Last-Event-ID resumes
-- without gap or duplicate), cancel and resume; and every tips.interval_ms a "tip" event
-- (fastbrain.tips, no id) on each stream.
-- The registry guards single flight; this file only builds the spec and translates.
local fb = require "fastbrain"
local estimate_queue = require "fastbrain.estimate_queue"
local models = require "fastbrain.models"
local router = require "fastbrain.router"
local skills = require "fastbrain.api.skills"
local store = require "fastbrain.skills"
local scenarios_api = require "fastbrain.api.scenarios"
local jobs_api = require "fastbrain.api.jobs"
local adapters = require "fastbrain.api.adapters"
local tips = require "fastbrain.tips"
local train = require "fastbrain.train"
local json = fb.json
local jobs = fb.jobs

local M = {}

local HISTORY_POINTS = 200

-- A fresh adapter directory for the skill, named for the UTC time ("-2", "-3"... when a job
-- of the skill already trains into it or it exists).
local function adapter_out(data_dir, skill)
  local taken = {}
  for _, job in ipairs(jobs.list{skill = skill}) do taken[job.spec and job.spec.out or ""] = true end
  local base = ("%s/adapters/%s/%s"):format(data_dir, skill, os.date("!%Y%m%d-%H%M%S"))
  local out, n = base, 1
  while taken[out] or fb.fs.mode(out) do
    n = n + 1
    out = base .. "-" .. n
  end
  return out
end

-- What a skill trains on: its base model (a models.lua id), else the server's default. A base
-- model that has since gone (deleted from the cache) is a 409: the skill must pick another.
local function base_model(data_dir, skill, default)
  if not skill.base_model then return default end
  local name, err = models.path(skill.base_model, data_dir)
  if not name then router.fail(409, ("the skill's base model is gone: %s"):format(err)) end
  return name
end

-- The skill's scenarios with hard checks, as spec.scenarios takes them -> list (maybe empty)
-- | nil, problem (scenarios.jsonl is broken)
local function checked_scenarios(data_dir, skill)
  local list, problems = scenarios_api.read(data_dir, skill)
  if not list then
    return nil, ("scenarios.jsonl: line %s: %s"):format(tostring(problems[1].line), problems[1].message)
  end
  local out = json.array()
  for _, s in ipairs(list) do
    if s.checks and next(s.checks) then out[#out + 1] = {id = s.id, messages = s.messages, checks = s.checks} end
  end
  return out
end

-- The spec a run of the skill gets, but for its output directory: the skill's defaults, then
-- the request's overrides, then what the server decides (data, template, the scenarios when it
-- selects by them, and the model: `model` when given, else the skill's base model, else the
-- server's default). -> spec, and what is wrong with its select "scenarios" (the skill has no
-- scenario with hard checks, or a broken scenarios.jsonl), if anything
function M.spec(data_dir, default, skill, overrides, model)
  local spec = train.merge(train.merge({}, skill.defaults or {}), overrides)
  spec.skill = skill.id
  spec.model = model or base_model(data_dir, skill, default)
  spec.data = store.data_path(data_dir, skill.id)
  spec.template = spec.template or skill.template
  spec.samples = spec.samples or {}
  spec.samples.prompts = spec.samples.prompts or skill.sample_prompts
  spec.samples.system = spec.samples.system or skill.system
  if spec.select == "scenarios" then
    local list, problem = checked_scenarios(data_dir, skill.id)
    if list and #list == 0 then
      problem = "needs scenarios with hard checks (must_include, regex, max_words...): the skill has none"
    end
    spec.scenarios = list and #list > 0 and list or nil
    return spec, problem
  end
  return spec
end

-- At most n points of a [[step, loss]...] history, evenly spaced, the last one kept.
local function downsample(history, n)
  if type(history) ~= "table" or #history <= n then return history end
  local out, stride = json.array(), #history / n
  for i = 1, n - 1 do out[i] = history[math.floor((i - 1) * stride) + 1] end
  out[n] = history[#history]
  return out
end

-- The smoothed training loss at each step of a [[step, loss, loss_smoothed]...] history: the
-- trainer's own (engine/train.c), so the chart's line ends at the number the progress events
-- carry. A job recorded before histories kept it shows its raw loss.
local function smooth(history)
  local out = json.array()
  for i, point in ipairs(type(history) == "table" and history or {}) do out[i] = {point[1], point[3] or point[2]} end
  return out
end

-- The dashboard's view of a job.
local function status(job)
  local p = job.progress ~= json.null and job.progress or {}
  return {
    job = job.id, skill = job.skill, state = job.state, reason = job.reason, place = job.place,
    step = p.step, total_steps = p.total_steps, epoch = p.epoch, total_epochs = p.total_epochs,
    loss = p.loss, loss_smoothed = p.loss_smoothed, eta_s = p.eta_s, tokens_per_s = p.tokens_per_s, device = p.device,
    device_name = p.device_name,
    loss_history = downsample(job.loss_history, HISTORY_POINTS),
    smoothed_history = downsample(smooth(job.loss_history), HISTORY_POINTS),
    eval_history = downsample(job.eval_history, HISTORY_POINTS),
    samples = job.samples, summary = job.summary, adapter = job.adapter, error = job.error,
    created_at = job.created_at, started_at = job.started_at, finished_at = job.finished_at,
    seq = job.seq, badge = job.summary ~= json.null and adapters.badge(adapters.judged_loss(job.summary)) or nil,
  }
end

-- What the log tail shows of a job: its steps (the latest one), evaluations, checkpoints,
-- saving, messages, errors and states; not its samples, debug messages or the worker's stderr
-- (diagnostics; web/activity.js leaves out the same).
local ACTIVITY = {start = true, eval = true, checkpoint = true, saving = true, log = true, error = true,
                  state = true, done = true}

-- The last n events of the job the log tail shows, oldest first, with its latest step's
-- progress in its place among them.
local function activity(job, n)
  local list, last_progress = {}, nil
  for _, ev in ipairs(jobs.events(job.id) or {}) do
    if ev.event == "progress" then
      last_progress = ev
    elseif ACTIVITY[ev.event] and not (ev.event == "log" and (ev.level == "stderr" or ev.level == "debug")) then
      if last_progress then list[#list + 1], last_progress = last_progress, nil end
      if ev.event == "done" then ev.summary = nil end  -- the status has it
      list[#list + 1] = ev
    end
  end
  list[#list + 1] = last_progress
  local out = json.array()
  for i = math.max(1, #list - n + 1), #list do out[#out + 1] = list[i] end
  return out
end

local function latest(id)
  local job = jobs.latest(id)
  if not job then router.fail(404, ("skill '%s' has never been trained"):format(id)) end
  return job
end

local function event_id(ev) return ev.job .. ":" .. ev.seq end

-- What a job of spec needs from an executor that asks for it (slurm's --mem, docs/slurm.md):
-- {memory_bytes = the host memory its worker needs at its peak}, from the estimate's CPU
-- costs with a calibration measured before (the form's estimate measures one; measuring now
-- would hold the start for minutes). memory_bytes is nil when no calibration is cached, and for
-- a GPU run, whose peak is on the GPU: the executor's default goes then.
local function needs(spec)
  if spec.device == "cuda" then return {} end
  local run_spec = {}
  for k, v in pairs(spec) do run_spec[k] = v end
  run_spec.skill, run_spec.out = nil, nil -- the registry's, not the trainer's
  local code, body = estimate_queue.get(run_spec, {calibrate = false})
  local cpu = code == 200 and body.estimate.cpu
  if not cpu then
    fb.log.warn("training %s: no memory estimate for the scheduler (%s)", spec.skill,
                code == 200 and "the model's shape is not calibrated yet" or body.error)
    return {}
  end
  return {memory_bytes = math.tointeger(math.ceil(cpu.peak_bytes))}
end

-- Stream one skill's events: replay what follows last_event_id (or a snapshot when there is
-- none), then live events, each job's events sent once and in order.
local function stream_events(stream, skill, last_event_id)
  local sent = {}  -- job id -> last seq sent
  local function send(ev)
    if ev.seq <= (sent[ev.job] or 0) then return end
    sent[ev.job] = ev.seq
    stream:send(ev.event, ev, event_id(ev))
  end
  -- Subscribe first: replay below is synchronous, so nothing slips between the two.
  local sub = jobs.subscribe(skill, send)
  stream:on_close(function() sub:close() end)
  local current = jobs.latest(skill)
  local job_id, seq = (last_event_id or ""):match("^(.+):(%d+)$")
  if job_id and jobs.get(job_id) then
    sent[job_id] = tonumber(seq)
    for _, ev in ipairs(jobs.events(job_id, sent[job_id])) do send(ev) end
    if current and current.id ~= job_id then
      for _, ev in ipairs(jobs.events(current.id)) do send(ev) end
    end
  else
    local snap = current and status(current) or {skill = skill, state = json.null}
    stream:send("snapshot", snap, current and current.seq > 0 and (current.id .. ":" .. current.seq) or nil)
    if current then sent[current.id] = current.seq end
  end
end

-- Send a tip at once, then every tips.interval_ms until the stream closes.
local function rotate_tips(stream, skill)
  local state = {index = 0}
  local function tip()
    local job = jobs.latest(skill)
    local text = tips.next(state, job and tips.values(job) or {})
    if text then stream:send("tip", {index = state.index, text = text}) end
  end
  tip()
  local timer = fb.timer.every(tips.interval_ms, tip)
  stream:on_close(function() timer:stop() end)
end

-- mount(app, {data_dir=, model=, executor=}): model is the base model a skill without one
-- trains on; executor the registry's ("local" when nil).
function M.mount(app, opts)
  local data_dir, model = opts.data_dir, opts.model
  local schedules = opts.executor == "slurm" -- the executor asks what a job needs

  app:post("/api/train-skill/:skill", function(req, res)
    local skill = skills.require(data_dir, req.params.skill)
    local overrides = req.body ~= "" and req:json() or {}
    local errors = train.check_request(overrides)
    if errors then return skills.bad_fields(res, "invalid training spec", errors) end
    local spec, problem = M.spec(data_dir, model, skill, overrides)
    if problem then
      return skills.bad_fields(res, "invalid training spec", {select = problem})
    end
    spec.out = adapter_out(data_dir, skill.id)
    local job, code, detail = jobs.start(spec, schedules and not M.is_live(skill.id) and needs(spec) or nil)
    if job then return res:json(202, {job = job}) end
    if code == "conflict" then return res:json(409, {error = "training already running", job = detail}) end
    res:error(code == "invalid" and 400 or 500, detail)
  end)

  -- What a run of this skill gets for each field its request leaves out, and what each field a
  -- request may set takes (the trainer's own description: a form's limits and choices).
  local request_fields = {}
  for _, f in ipairs(train.fields()) do
    if f.set_by == "request" then request_fields[f.name] = f end
  end
  app:get("/api/training/defaults/:skill", function(req, res)
    local skill = skills.require(data_dir, req.params.skill)
    local defaults = train.defaults(base_model(data_dir, skill, model))
    res:json(200, {defaults = train.merge(defaults, skill.defaults or {}), fields = request_fields})
  end)

  app:get("/api/training/status/:skill", function(req, res)
    res:json(200, status(latest(skills.check_id(req.params.skill))))
  end)

  -- The latest job's activity for the log tail: GET ?lines=N (1..200, default 12).
  app:get("/api/training/activity/:skill", function(req, res)
    local job = latest(skills.check_id(req.params.skill))
    local n = math.tointeger(tonumber(req.query.lines or "12"))
    if not n or n < 1 or n > 200 then router.fail(400, "lines: must be an integer 1..200") end
    res:json(200, {job = job.id, events = activity(job, n)})
  end)

  app:get("/api/training/events/:skill", function(req, res)
    local skill = skills.require(data_dir, req.params.skill)
    local stream = res:sse()
    if not stream then return end
    stream_events(stream, skill.id, req.last_event_id)
    rotate_tips(stream, skill.id)
  end)

  app:post("/api/training/cancel/:skill", function(req, res)
    local job = latest(skills.check_id(req.params.skill))
    local ok, code, msg = jobs.cancel(job.id)
    if not ok then return res:error(code == "invalid" and 409 or 500, "no training running: " .. msg) end
    res:json(202, {job = jobs.get(job.id)})
  end)

  app:post("/api/training/resume/:skill", function(req, res)
    jobs_api.resume(res, latest(skills.check_id(req.params.skill)).id)
  end)
end

-- Is a job of this skill queued or running?
function M.is_live(skill)
  local job = jobs.latest(skill)
  return job ~= nil and (job.state == "queued" or job.state == "running")
end

return M
