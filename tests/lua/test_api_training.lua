-- The training and jobs API over real HTTP against scripts/serve.lua in-process, its jobs run
-- by the real `fastbrain worker` training the bundled model (share/models/tiny) on fast skills
-- (tests/api/server.lua): the defaults a run gets, 202 then 409 with the live job, many
-- concurrent starts -> exactly one 202, spec field errors, status with the loss history, SSE with Last-Event-ID replay, a queue,
-- cancel, resume from the checkpoint (a skill's latest job, or any job by id), the jobs list,
-- one job, its log and the log followed; select "scenarios" fills the spec from the skill's
-- scenarios.
local T = require "tests.lua.testing"
local server = require "tests.api.server"
local client = require "tests.http.client"
local fb = require "fastbrain"

local app = server.start()
local function call(...) return server.call(app, ...) end
local function wait_state(skill, ...) return server.wait_state(app, skill, ...) end
local SKILL = "plumbing-receptionist"
-- A job that runs until it is cancelled.
local LONG = {max_steps = 100000, checkpoint_interval = 5}

T.test("setup: fast skills", function()
  for _, id in ipairs{"fast", "fast2", "sse", "long", "queued", "byid"} do server.fast_skill(app, id) end
end)

T.test("unknown skill 404, bad id 400, never trained 404, bad spec fields 400", function()
  T.eq((call("POST", "/api/train-skill/nobody")), 404)
  T.eq((call("POST", "/api/train-skill/..%2Fx")), 400)
  T.eq((call("GET", "/api/training/status/" .. SKILL)), 404)
  local status, body = call("POST", "/api/train-skill/" .. SKILL, {epochs = "3", lora = {r = 0}, hooks = "x.lua"})
  T.eq({status, body.error}, {400, "invalid training spec"})
  T.matches(body.fields.epochs, "integer")
  T.matches(body.fields["lora.r"], "integer")
  T.eq(body.fields.hooks, "set by the server")
end)

T.test("the defaults a run gets: the trainer's, then the served model's, then the skill's", function()
  T.eq((call("GET", "/api/training/defaults/nobody")), 404)
  local status, body = call("GET", "/api/training/defaults/" .. SKILL)
  T.eq(status, 200)
  local d = body.defaults
  -- The bundled model is small (lr 5e-3 and 6 epochs, not the trainer's 2e-4 and 3) with a
  -- 1024-token context.
  T.eq({d.lr, d.max_len, d.epochs, d.lora.r, d.lora.alpha, d.eval.fraction}, {5e-3, 1024, 6, 16, 32, 0.1})
  T.eq({d.model, d.data, d.out}, {nil, nil, nil})  -- what the server supplies per run
  -- Each field a request may set, with the trainer's range, choices and doc (the form's limits).
  local f = body.fields
  T.eq({f["lora.r"].type, f["lora.r"].min, f["lora.r"].max}, {"integer", 1, 256})
  T.eq({f.device.type, f.device.choices}, {"enum", {"auto", "cpu", "cuda"}})
  T.eq({f.model, f.hooks, f["samples.system"]}, {nil, nil, nil})
  T.matches(f.lr.doc, "learning rate")
  local _, fast = call("GET", "/api/training/defaults/fast")
  T.eq({fast.defaults.max_len, fast.defaults.micro_batch, fast.defaults.lr}, {server.FAST.max_len, server.FAST.micro_batch, 5e-3})
end)

T.test("a start is 202; a second is 409 with the live job; it trains and finishes", function()
  local status, body = call("POST", "/api/train-skill/fast", {max_steps = 12})
  T.eq(status, 202)
  local job = body.job
  T.eq(job.skill, "fast")
  T.eq(job.spec.data, app.data_dir .. "/skills/fast/data.jsonl")
  T.eq(job.spec.model, fb.root .. "/share/models/tiny")
  T.eq(job.spec.samples, {prompts = {"hi"}, system = "You answer briefly.", max_tokens = 8})
  local s2, b2 = call("POST", "/api/train-skill/fast")
  T.eq({s2, b2.error, b2.job.id}, {409, "training already running", job.id})
  local st = wait_state("fast", "succeeded", "failed")
  T.eq({st.state, st.job, st.step, st.total_steps}, {"succeeded", job.id, 12, 12})
  T.eq(#st.loss_history, 12)
  for i, pt in ipairs(st.loss_history) do
    T.eq(pt[1], i, "history step")
    -- (a loss of the bundled model: up to ~11 nats a token on answers that are names it never saw)
    assert(pt[2] > 0 and pt[2] < 20, "a loss of the bundled model")
  end
  T.eq(#st.eval_history, 4)  -- the base before the first step, every 5 steps and at the end
  T.eq(st.samples[#st.samples].prompt, "hi")
  T.eq(st.summary.steps, 12)
  T.eq(st.summary.spec.lr, 5e-3, "a start that names no lr runs at the model's default")
  T.eq(st.adapter, job.spec.out)
  assert(fb.fs.read(st.adapter .. "/adapter_model.safetensors"), "the adapter was written")
  local _, adapters = call("GET", "/api/adapters")
  local versions = {}
  for _, a in ipairs(adapters.adapters or adapters) do
    if a.skill == "fast" then versions[#versions + 1] = a.version end
  end
  T.eq(versions, {job.spec.out:match("[^/]+$")})
end, {timeout = 60000})

T.test("the status's smoothed loss and badge; the activity the log tail shows", function()
  local _, st = call("GET", "/api/training/status/fast")
  local final = st.summary.final_loss_smoothed
  T.eq(#st.smoothed_history, #st.loss_history)
  assert(math.abs(st.smoothed_history[1][2] - st.loss_history[1][2]) < 1e-9, "it starts at the first step's loss")
  assert(math.abs(st.smoothed_history[#st.smoothed_history][2] - final) < 1e-9, "and ends at the trainer's smoothed loss")
  assert(math.abs(st.loss_smoothed - final) < 1e-9, "the status names the same number")
  T.eq(st.badge, require("fastbrain.api.adapters").badge(st.summary.eval_loss))
  local status, body = call("GET", "/api/training/activity/fast?lines=200")
  T.eq({status, body.job}, {200, st.job})
  local kinds, progress = {}, {}
  for i, ev in ipairs(body.events) do
    kinds[ev.event] = (kinds[ev.event] or 0) + 1
    if ev.event == "progress" then
      progress[#progress + 1] = ev.step
      -- Each run of steps between other events is its last step only.
      assert(body.events[i + 1].event ~= "progress", "two steps in a row")
    end
    assert(ev.event ~= "log" or ev.level ~= "stderr", "the worker's stderr is not in the tail")
  end
  T.eq({kinds.start, kinds.saving, kinds.done, kinds.sample}, {1, 1, 1, nil})
  T.eq(kinds.eval, 4)
  assert(#progress >= 3 and #progress < 12, "steps, not every step")
  T.eq(progress[#progress], 12)
  T.eq(body.events[#body.events].state, "succeeded")
  T.eq(body.events[#body.events - 1].event, "done")
  T.eq(body.events[#body.events - 1].summary, nil, "the status has the summary")
  status, body = call("GET", "/api/training/activity/fast?lines=3")
  T.eq({status, #body.events}, {200, 3})
  T.eq((call("GET", "/api/training/activity/fast?lines=0")), 400)
  T.eq((call("GET", "/api/training/activity/" .. SKILL)), 404)
end)

T.test("two starts of one skill in the same second train into different adapter versions", function()
  local _, a = call("POST", "/api/train-skill/fast2", {max_steps = 1})
  wait_state("fast2", "succeeded")
  local _, b = call("POST", "/api/train-skill/fast2", {max_steps = 1})
  assert(a.job.spec.out ~= b.job.spec.out, "the same output directory twice")
  wait_state("fast2", "succeeded")
end, {timeout = 60000})

T.test("many concurrent starts for one skill: exactly one 202", function()
  local codes, pending = {}, 50
  for _ = 1, 50 do
    fb.spawn(function()
      local status = call("POST", "/api/train-skill/fast", {max_steps = 2})
      codes[status] = (codes[status] or 0) + 1
      pending = pending - 1
    end)
  end
  local deadline = fb.now() + 20000
  while pending > 0 and fb.now() < deadline do fb.sleep(5) end
  T.eq(codes, {[202] = 1, [409] = 49})
  local _, list = call("GET", "/api/jobs?skill=fast")
  T.eq(list.total, 2)  -- this one and the first test's
  wait_state("fast", "succeeded")
end, {timeout = 60000})

-- Read SSE frames until `n` events with data arrived (each within `ms`, default 5 s):
-- {{event=, id=, data=}...}. Tips, which the stream sends from its start and then on a timer,
-- are skipped.
local function read_events(c, n, ms)
  local events = {}
  while #events < n do
    c:read_until("\n\n", ms or 5000)
    local frame, rest = c.buf:match("^(.-)\n\n(.*)$")
    if frame then
      c.buf = rest
      local ev = {event = frame:match("event: ([^\n]+)"), id = frame:match("id: ([^\n]+)"),
                  data = frame:match("data: ([^\n]+)")}
      if ev.data and ev.event ~= "tip" then events[#events + 1] = ev end
    end
  end
  return events
end

local function open_events(skill, last_id)
  local c = client.connect(app.port)
  c:send(("GET /api/training/events/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n"):format(
    skill, last_id and ("Last-Event-ID: " .. last_id .. "\r\n") or ""))
  c:read_until("\r\n\r\n", 3000)
  c.buf = c.buf:match("\r\n\r\n(.*)$")
  return c
end

T.test("SSE: a snapshot, live events, and a Last-Event-ID replay with no gap or duplicate", function()
  local c = open_events("sse")
  local snap = read_events(c, 1)[1]
  T.eq(snap.event, "snapshot")
  T.eq(fb.json.decode(snap.data).state, fb.json.null)
  local _, started = call("POST", "/api/train-skill/sse", {max_steps = 6})
  local job = started.job.id
  local first = read_events(c, 3)
  c:close()
  T.eq(first[1].id, job .. ":1")
  T.eq(wait_state("sse", "succeeded", "failed").state, "succeeded")
  local seq = select(2, call("GET", "/api/jobs/" .. job)).job.seq
  local again = open_events("sse", first[3].id)
  local rest = read_events(again, seq - 3)
  again:close()
  for i, ev in ipairs(rest) do T.eq(ev.id, job .. ":" .. (i + 3), "replayed id") end
  T.eq(fb.json.decode(rest[#rest].data).event, "state")
end, {timeout = 60000})

-- A cancelled job's reason: "cancelled" (the worker checkpointed and exited 3). The worker
-- sometimes aborts after writing that checkpoint (glibc: "corrupted size vs. prev_size", a
-- heap corruption in the trainer, open in the training core), which reads "cancelled: killed
-- by signal 6"; the checkpoint the tests check is there either way.
local function check_cancelled(reason)
  if reason ~= "cancelled: killed by signal 6" then T.eq(reason, "cancelled") end
end

-- The job, once its worker has trained past `step`.
local function wait_step(id, step)
  return server.wait_until(function()
    local _, body = call("GET", "/api/jobs/" .. id)
    local p = body.job.progress
    return type(p) == "table" and (p.step or 0) >= step and body.job
  end, "step " .. step)
end

T.test("a queue behind the running job; cancel; resume continues from the checkpoint", function()
  local status, body = call("POST", "/api/train-skill/long", LONG)
  T.eq(status, 202)
  local id = body.job.id
  wait_state("long", "running")
  status, body = call("POST", "/api/train-skill/queued", {max_steps = 3})
  T.eq({status, body.job.state, body.job.place}, {202, "queued", 1})
  local _, st = call("GET", "/api/training/status/queued")
  T.eq({st.state, st.place}, {"queued", 1})
  wait_step(id, 7)
  status, body = call("POST", "/api/training/cancel/long")
  T.eq({status, body.job.id}, {202, id})
  local cancelled = wait_state("long", "cancelled")
  check_cancelled(cancelled.reason)
  local _, got = call("GET", "/api/jobs/" .. id)
  local at = got.job.checkpoint_step
  assert(at >= 7 and at == cancelled.step, "a checkpoint at the step the worker stopped")
  T.eq(wait_state("queued", "succeeded", "failed").state, "succeeded")
  T.eq((call("POST", "/api/training/cancel/long")), 409)
  status, body = call("POST", "/api/training/resume/long")
  T.eq({status, body.job.id, body.job.state}, {202, id, "running"})
  T.eq((call("POST", "/api/training/resume/long")), 409)
  T.eq((call("POST", "/api/train-skill/long")), 409)
  local resumed = wait_step(id, at + 2)
  T.eq(resumed.progress.resumed_from_step, at)
  for i, pt in ipairs(resumed.loss_history) do T.eq(pt[1], i, "history step after the resume") end
  T.eq((call("POST", "/api/training/cancel/long")), 202)
  check_cancelled(wait_state("long", "cancelled").reason)
end, {timeout = 60000})

T.test("the jobs list, one job, its log, and the log followed", function()
  local _, st = call("GET", "/api/training/status/long")
  local id = st.job
  local status, body = call("GET", "/api/jobs?state=succeeded&per_page=1")
  T.eq({status, #body.jobs, body.total}, {200, 1, 6})
  T.eq((call("GET", "/api/jobs?state=bogus")), 400)
  T.eq((call("GET", "/api/jobs/nope")), 404)
  status, body = call("GET", "/api/jobs/" .. id .. "/log?lines=5")
  T.eq({status, body.job, #body.lines}, {200, id, 5})
  local all = select(2, call("GET", "/api/jobs/" .. id .. "/log?lines=5000")).lines
  assert(#all > 5, "the worker's stderr is in the log")
  for i = 1, 5 do T.eq(body.lines[i], all[#all - 5 + i], "the last five lines") end
  T.eq((call("GET", "/api/jobs/" .. id .. "/log?lines=0")), 400)
end, {timeout = 10000})

-- The job once its state is one of states (polled by id: it need not be its skill's newest).
-- The job's progress once a worker resumed from step `from` has run past it (until its start
-- event arrives, the job still shows the progress of the worker before it).
local function wait_resumed(id, from)
  return server.wait_until(function()
    local p = select(2, call("GET", "/api/jobs/" .. id)).job.progress
    return type(p) == "table" and p.resumed_from_step == from and (p.step or 0) > from and p
  end, ("%s resumed from step %d"):format(id, from))
end
local function wait_job(id, ...)
  local want = {}
  for _, st in ipairs{...} do want[st] = true end
  return server.wait_until(function()
    local job = select(2, call("GET", "/api/jobs/" .. id)).job
    return want[job.state] and job
  end, id .. " to be " .. table.concat({...}, " or "))
end

T.test("any job resumes by id: the same job goes on; 409 while live or when it cannot", function()
  -- A: cancelled after a checkpoint; B, newer, succeeds.
  local status, body = call("POST", "/api/train-skill/byid", LONG)
  T.eq(status, 202)
  local a = body.job.id
  wait_step(a, 7)
  T.eq((call("POST", "/api/training/cancel/byid")), 202)
  check_cancelled(wait_job(a, "cancelled").reason)
  status, body = call("POST", "/api/train-skill/byid", {max_steps = 3})
  T.eq(status, 202)
  local b = body.job.id
  T.eq(wait_job(b, "succeeded", "failed").state, "succeeded")
  status, body = call("POST", "/api/jobs/" .. b .. "/resume")
  T.eq({status, body.job.id}, {409, b})
  T.eq(body.error, ("job %s is succeeded: nothing to resume"):format(b))
  T.eq((call("POST", "/api/training/resume/byid")), 409)  -- the skill's latest is B
  -- A by id: the same job, from its checkpoint; it is now the skill's current job.
  local at = select(2, call("GET", "/api/jobs/" .. a)).job.checkpoint_step
  status, body = call("POST", "/api/jobs/" .. a .. "/resume")
  T.eq({status, body.job.id}, {202, a})
  status, body = call("POST", "/api/jobs/" .. a .. "/resume")
  T.eq({status, body.error, body.job.id}, {409, "training already running", a})
  status, body = call("POST", "/api/jobs/" .. b .. "/resume")
  T.eq({status, body.job.id}, {409, b})
  status, body = call("POST", "/api/train-skill/byid")
  T.eq({status, body.job.id}, {409, a})
  local resumed = wait_step(a, at + 2)
  T.eq(resumed.progress.resumed_from_step, at)
  T.eq(select(2, call("GET", "/api/training/status/byid")).job, a)
  for i, pt in ipairs(resumed.loss_history) do T.eq(pt[1], i, "history step after the resume") end
  -- A's worker killed: failed, but with a checkpoint, so it resumes again.
  assert(server.kill(resumed.pid), "kill the worker")
  local failed = wait_job(a, "failed")
  T.eq(failed.reason, "killed by signal 9")
  T.eq((call("POST", "/api/jobs/" .. a .. "/resume")), 202)
  wait_resumed(a, failed.checkpoint_step)
  T.eq((call("POST", "/api/training/cancel/byid")), 202)
  wait_job(a, "cancelled")
  -- C: killed before its first checkpoint: nothing to resume, by id or by skill.
  status, body = call("POST", "/api/train-skill/byid", {max_steps = 100000, checkpoint_interval = 100000})
  T.eq(status, 202)
  local c = body.job.id
  assert(server.kill(wait_step(c, 1).pid), "kill the worker")
  wait_job(c, "failed")
  status, body = call("POST", "/api/jobs/" .. c .. "/resume")
  T.eq({status, body.job.id, body.job.state}, {409, c, "failed"})
  T.eq(body.error, ("job %s failed before its first checkpoint (killed by signal 9): nothing to resume; start a new job"):format(c))
  T.eq((call("POST", "/api/training/resume/byid")), 409)
  T.eq((call("POST", "/api/jobs/nope/resume")), 404)
  T.eq((call("POST", "/api/train-skill/byid", {max_steps = 2})), 202)  -- a new job is the way on
  wait_state("byid", "succeeded")
end, {timeout = 90000})

-- Read SSE frames until an "end" event: {{event=, id=, data=}...}.
local function read_until_end(c)
  local events = {}
  repeat
    local ev = read_events(c, 1, 60000)[1]  -- a job's log may be quiet for a while
    events[#events + 1] = ev
  until ev.event == "end"
  return events
end

T.test("the log followed over SSE: the tail, live lines, an end; Last-Event-ID resumes", function()
  local _, body = call("POST", "/api/train-skill/long", {max_steps = 30})
  local id = body.job.id
  local c = client.connect(app.port)
  c:send(("GET /api/jobs/%s/log?lines=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"):format(id))
  c:read_until("\r\n\r\n", 3000)
  T.matches(c.buf, "^HTTP/1.1 200")
  c.buf = c.buf:match("\r\n\r\n(.*)$")
  local events = read_until_end(c)
  c:close()
  local last = events[#events]
  T.eq(fb.json.decode(last.data).state, "succeeded")
  assert(#events >= 3, "live log lines came while the job ran")
  local seqs = {}
  for i = 1, #events - 1 do
    T.eq(events[i].event, "log")
    seqs[i] = tonumber(events[i].id)
    if i > 1 then assert(seqs[i] > seqs[i - 1], "ids increase") end
  end
  local all = select(2, call("GET", ("/api/jobs/%s/log?lines=5000"):format(id))).lines
  local tail = {}  -- the follow's lines are the log's last ones: none missed, none twice
  for i = #all - #seqs + 1, #all do tail[#tail + 1] = all[i].seq end
  T.eq(seqs, tail)
  -- A follow that resumes after the first live line gets every later line once, then the end.
  local again = client.connect(app.port)
  again:send(("GET /api/jobs/%s/log?follow=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: %d\r\n\r\n")
    :format(id, seqs[1]))
  again:read_until("\r\n\r\n", 3000)
  again.buf = again.buf:match("\r\n\r\n(.*)$")
  local rest = read_until_end(again)
  again:close()
  local want = {}
  for _, line in ipairs(all) do if line.seq > seqs[1] then want[#want + 1] = line.seq end end
  local got = {}
  for i = 1, #rest - 1 do got[i] = tonumber(rest[i].id) end
  T.eq(got, want)
end, {timeout = 60000})

T.test("select scenarios: the job gets the skill's scenarios with hard checks, or a 400", function()
  server.fast_skill(app, "picky")
  local status, body = call("POST", "/api/train-skill/picky", {max_steps = 4, select = "scenarios"})
  T.eq({status, body.error}, {400, "invalid training spec"})
  T.matches(body.fields.select, "needs scenarios with hard checks.*the skill has none")
  T.eq(call("POST", "/api/train-skill/picky", {select = "best"}), 400)
  local ask = {{role = "user", content = "hi"}}
  T.eq(call("PUT", "/api/skills/picky/scenarios", {
    {id = "short", messages = ask, checks = {max_words = 50}},
    {id = "kind", messages = ask, rubric = "is friendly"}}), 200)
  status, body = call("POST", "/api/train-skill/picky", {max_steps = 4, select = "scenarios", eval = {interval = 2}})
  T.eq(status, 202)
  T.eq(body.job.spec.scenarios, {{id = "short", messages = ask, checks = {max_words = 50}}})
  local st = wait_state("picky", "succeeded", "failed")
  T.eq(st.state, "succeeded")
  local s = st.summary
  T.eq({s.select, s.scenario_total, #s.scenario_history}, {"scenarios", 1, 2})
  T.eq(s.selected_passed, math.max(s.scenario_history[1].passed, s.scenario_history[2].passed))
end)

T.test("teardown", function() server.stop(app) end)

T.run()
