-- fastbrain.scenario_runs: a skill's scenarios answered by one model (the base, an adapter
-- version, or a training job's checkpoint), each answer checked (fastbrain.scenarios) and kept
-- with its verdicts and latency.
-- Runs are queued and answered one at a time, off the loop (fastbrain.model_pool), each saved
-- after every answer in skills/<skill>/scenario-runs/<id>.json, so a restarted server goes on
-- where it stopped; a version's latest result is also its adapter's scenarios.json (the badge).
--   new{data_dir =, pool =, model = default base, chain = the judge's providers} -> runs
--   runs:start(skill, target [, {judge = true}]) -> run | nil, err, status: target {kind =
--     "base"}, {kind = "adapter", version =} or {kind = "checkpoint", job =, step =}; the run is
--     queued. A checkpoint becomes the run's own adapter (<id>.adapter beside the run's file)
--     first, so the run keeps its weights after the trainer prunes the checkpoint.
--   runs:list(skill) -> summaries, newest first; runs:get(skill, id) -> run | nil
--   runs:cancel(skill, id) -> run | nil, err; runs:listen(skill, fn(event, summary)) -> unlisten
--   runs:resume_saved(): queue again the runs a stopped server left queued or running
-- A scenario passes when all its hard checks do and, when it has a rubric, the judge
-- (fastbrain.judge) scores it 4 or 5; a rubric the judge could not score leaves it "unjudged"
-- (not a pass), as does a run without the judge.
local fb = require "fastbrain"
local answer = require "fastbrain.answer"
local checkpoints = require "fastbrain.checkpoints"
local judge = require "fastbrain.judge"
local models = require "fastbrain.models"
local scenarios = require "fastbrain.scenarios"
local scenarios_api = require "fastbrain.api.scenarios"
local skills = require "fastbrain.skills"

local M = {MAX_TOKENS = 256}

local Runs = {}
Runs.__index = Runs

function M.new(opts)
  return setmetatable({data_dir = opts.data_dir, pool = opts.pool, model = opts.model, chain = opts.chain,
                       queue = {}, listeners = {}, cache = {}, answering = {}, next_n = 0}, Runs)
end

local function runs_dir(self, skill) return ("%s/skills/%s/scenario-runs"):format(self.data_dir, skill) end
local function adapter_dir(self, skill, version) return ("%s/adapters/%s/%s"):format(self.data_dir, skill, version) end

local function read_json(path)
  local text = fb.fs.read(path)
  if not text then return nil end
  local v = fb.json.decode(text)
  return type(v) == "table" and v or nil
end

-- What lists and events carry: the run without its answers.
local function summary(run)
  local t = {}
  for k, v in pairs(run) do if k ~= "results" then t[k] = v end end
  return t
end

function Runs:emit(run, event)
  for fn in pairs(self.listeners[run.skill] or {}) do fn(event, summary(run)) end
end

function Runs:save(run)
  local dir = runs_dir(self, run.skill)
  assert(fb.fs.mkdir_p(dir))
  local ok, err = fb.fs.write_atomic(("%s/%s.json"):format(dir, run.id), fb.json.encode(run))
  if not ok then fb.log.warn("scenario runs: %s not saved: %s", run.id, err) end
end

-- The base model and adapter directory a target names -> model, adapter | nil, err
-- (a checkpoint: model, nil, its job and step directory)
function Runs:resolve(skill, target)
  if target.kind == "checkpoint" then
    local job, step_dir = checkpoints.find(self.data_dir, skill, target.job, target.step)
    if not job then return nil, step_dir end
    return job.spec.model, nil, job, step_dir
  end
  if target.kind == "base" then
    local meta = skills.read(self.data_dir, skill) or {}
    return meta.base_model and models.path(meta.base_model, self.data_dir) or self.model
  end
  local dir = adapter_dir(self, skill, target.version)
  local summary_json = read_json(dir .. "/summary.json")
  if not summary_json then return nil, ("no adapter %s/%s"):format(skill, target.version) end
  return summary_json.base_model or self.model, dir
end

function Runs:start(skill, target, opts)
  local model, adapter, job, step_dir = self:resolve(skill, target)
  if not model then return nil, adapter, 404 end
  self.next_n = self.next_n + 1
  local run = {id = ("%s-%d"):format(os.date("!%Y%m%d-%H%M%S"), self.next_n), skill = skill, target = target,
               model = model, state = "queued", created_at = os.time(), answered = 0, passed = 0,
               total = fb.json.null, results = fb.json.array(),
               settings = {max_tokens = M.MAX_TOKENS, temperature = 0, repetition_penalty = answer.REPETITION_PENALTY,
                           judge = self.chain ~= nil and not (opts and opts.judge == false)}}
  run.adapter = adapter or fb.json.null
  while fb.fs.mode(("%s/%s.json"):format(runs_dir(self, skill), run.id)) do  -- a restarted server's
    self.next_n = self.next_n + 1
    run.id = ("%s-%d"):format(os.date("!%Y%m%d-%H%M%S"), self.next_n)
  end
  if job then
    local dir = ("%s/%s.adapter"):format(runs_dir(self, skill), run.id)
    assert(fb.fs.mkdir_p(runs_dir(self, skill)))
    local ok, err = checkpoints.to_adapter(job, step_dir, dir)
    if not ok then return nil, err, 422 end
    run.adapter = dir
  end
  self.cache[run.id] = run
  self:save(run)
  self:enqueue(run)
  return run
end

function Runs:enqueue(run)
  self.queue[#self.queue + 1] = run
  self:emit(run, "queued")
  if not self.working then  -- on the next loop turn: whoever queued it answers first
    self.working = true
    fb.timer.after(0, function()
      fb.spawn(function()
        while #self.queue > 0 do self:answer_all(table.remove(self.queue, 1)) end
        self.working = false
      end)
    end)
  end
end

-- The scenario's status from its hard checks and the judge's verdict (nil: not judged).
local function status_of(s, hard, hard_pass, verdict)
  if #hard > 0 and not hard_pass then return "fail" end
  if not s.rubric then return "pass" end
  if not verdict then return "unjudged" end
  return verdict.pass and "pass" or "fail"
end

-- Answer one scenario -> its result, or nil when the server is stopping
function Runs:answer_one(run, s, skill)
  local system = skill.system
  local started = fb.now()
  local job, err, code = self.pool:submit(run.model, scenarios.with_system(s.messages, system), {
    adapter = run.adapter ~= fb.json.null and run.adapter or nil, max_tokens = run.settings.max_tokens,
    temperature = run.settings.temperature, repetition_penalty = run.settings.repetition_penalty})
  local text, ev
  if job then
    self.answering[run.id] = job
    text, ev = job:wait()
    self.answering[run.id] = nil
  end
  if code == "closed" then return nil end  -- the server is stopping: the run goes on after it
  local result = {scenario = s.id, latency_ms = math.floor(fb.now() - started)}
  if not text then
    result.status, result.error = "error", job and ev.message or err
    return result
  end
  result.answer, result.tokens = text, ev.completion_tokens
  local verdicts, passed = scenarios.verdicts(text, s.checks)
  result.checks = fb.json.array(verdicts)
  local verdict
  if s.rubric and run.settings.judge and self.chain then
    local jerr
    verdict, jerr = judge.judge(self.chain, {skill = skill, scenario = s, answer = text})
    result.judge = verdict or {error = jerr.message, provider = jerr.provider, model = jerr.model,
                               prompt_version = jerr.prompt_version}
  end
  result.status = status_of(s, verdicts, passed, verdict)
  return result
end

function Runs:answer_all(run)
  if run.state == "cancelled" then return end
  local list, problems = scenarios_api.read(self.data_dir, run.skill)
  local meta = skills.read(self.data_dir, run.skill)
  if not list or not meta or #list == 0 then
    run.state, run.finished_at = "failed", os.time()
    run.error = not meta and "the skill is gone" or not list and
      ("scenarios.jsonl: line %s: %s"):format(tostring(problems[1].line), problems[1].message) or
      "the skill has no scenarios"
    self:save(run)
    return self:emit(run, "error")
  end
  run.state, run.total = "running", #list
  run.started_at = run.started_at or os.time()
  self:emit(run, "progress")
  local done = {}
  for _, r in ipairs(run.results) do done[r.scenario] = true end
  for _, s in ipairs(list) do
    if run.state == "cancelled" then break end
    if not done[s.id] then
      local result = self:answer_one(run, s, meta)
      if not result then return end
      if run.state == "cancelled" then break end
      run.results[#run.results + 1] = result
      run.answered = #run.results
      if result.status == "pass" then run.passed = run.passed + 1 end
      self:save(run)
      self:emit(run, "progress")
    end
  end
  if run.state == "cancelled" then
    self:save(run)
    return self:emit(run, "cancelled")
  end
  run.state, run.finished_at = "succeeded", os.time()
  self:save(run)
  if run.target.kind == "adapter" then
    local ok, err = fb.fs.write_atomic(run.adapter .. "/scenarios.json", fb.json.encode{
      run = run.id, passed = run.passed, total = run.total, finished_at = run.finished_at})
    if not ok then fb.log.warn("scenario runs: the badge of %s: %s", run.adapter, err) end
  end
  self:emit(run, "done")
end

function Runs:get(skill, id)
  local run = self.cache[id]
  if run and run.skill == skill then return run end
  if not id:match("^[%w-]+$") then return nil end
  run = read_json(("%s/%s.json"):format(runs_dir(self, skill), id))
  if run and run.skill == skill then return run end
end

function Runs:list(skill)
  local out = fb.json.array()
  local names = fb.fs.list(runs_dir(self, skill)) or {}
  for i = #names, 1, -1 do
    local id = names[i]:match("^([%w-]+)%.json$")
    local run = id and self:get(skill, id)
    if run then out[#out + 1] = summary(run) end
  end
  return out
end

function Runs:cancel(skill, id)
  local run = self:get(skill, id)
  if not run then return nil, "no run " .. id end
  if run.state ~= "queued" and run.state ~= "running" then return nil, "the run has ended: " .. run.state end
  for i, queued in ipairs(self.queue) do
    if queued == run then table.remove(self.queue, i) end
  end
  local was_queued = run.state == "queued"
  run.state, run.finished_at = "cancelled", os.time()
  if self.answering[run.id] then self.answering[run.id]:cancel() end
  if was_queued then
    self:save(run)
    self:emit(run, "cancelled")
  end
  return run
end

function Runs:listen(skill, fn)
  self.listeners[skill] = self.listeners[skill] or {}
  self.listeners[skill][fn] = true
  return function() self.listeners[skill][fn] = nil end
end

function Runs:resume_saved()
  local pending = {}
  for _, skill in ipairs(fb.fs.list(self.data_dir .. "/skills") or {}) do
    for _, name in ipairs(fb.fs.list(runs_dir(self, skill)) or {}) do
      local run = read_json(runs_dir(self, skill) .. "/" .. name)
      if run and (run.state == "queued" or run.state == "running") and run.skill == skill then
        pending[#pending + 1] = run
      end
    end
  end
  table.sort(pending, function(a, b) return a.created_at < b.created_at or (a.created_at == b.created_at and a.id < b.id) end)
  for _, run in ipairs(pending) do
    fb.json.array(run.results)
    self.cache[run.id] = run
    self:enqueue(run)
  end
end

return M
