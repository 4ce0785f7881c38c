-- The training and jobs API over real HTTP against scripts/serve.lua in-process, with
-- tests/jobs/worker.lua as the worker: 202 then 409 with the live job, many concurrent starts
-- -> exactly one 202, spec field errors, status, SSE with Last-Event-ID replay, cancel, resume,
-- the jobs list, one job and its log.
local T = require "tests.lua.testing"
local server = require "tests.api.server"
local client = require "tests.http.client"
local fb = require "fastbrain"

local bin = assert(arg[1], "usage: fastbrain run tests/lua/test_api_training.lua PATH-TO-FASTBRAIN")
local app = server.start(bin)
local function call(...) return server.call(app, ...) end
local SKILL = "plumbing-receptionist"

-- Poll the skill's status until its state is `state`.
local function wait_state(skill, state)
  local deadline = fb.now() + 5000
  while true do
    local _, st = call("GET", "/api/training/status/" .. skill)
    if st.state == state then return st end
    if fb.now() > deadline then error("state stayed " .. tostring(st.state), 2) end
    fb.sleep(10)
  end
end

T.test("unknown skill 404, bad id 400, never trained 404, bad spec fields 400", function()
  T.eq((call("POST", "/api/train-skill/nobody")), 404)
  T.eq((call("POST", "/api/train-skill/..%2Fx")), 400)
  T.eq((call("GET", "/api/training/status/" .. SKILL)), 404)
  local status, body = call("POST", "/api/train-skill/" .. SKILL, {epochs = "3", lora = {r = 0}, hooks = "x.lua"})
  T.eq({status, body.error}, {400, "invalid training spec"})
  T.matches(body.fields.epochs, "integer")
  T.matches(body.fields["lora.r"], "integer")
  T.eq(body.fields.hooks, "unknown field")
end)

T.test("a start is 202; a second is 409 with the live job; it finishes", function()
  local status, body = call("POST", "/api/train-skill/" .. SKILL, {epochs = 1})
  T.eq(status, 202)
  local job = body.job
  T.eq(job.skill, SKILL)
  T.eq(job.spec.data, app.data_dir .. "/skills/" .. SKILL .. "/data.jsonl")
  local s2, b2 = call("POST", "/api/train-skill/" .. SKILL)
  T.eq({s2, b2.error, b2.job.id}, {409, "training already running", job.id})
  local st = wait_state(SKILL, "succeeded")
  T.eq({st.job, st.step, st.total_steps}, {job.id, 3, 3})
  T.eq(#st.loss_history, 3)
end)

T.test("many concurrent starts for one skill: exactly one 202", function()
  local codes, pending = {}, 50
  for _ = 1, 50 do
    fb.spawn(function()
      local status = call("POST", "/api/train-skill/electrician-assistant")
      codes[status] = (codes[status] or 0) + 1
      pending = pending - 1
    end)
  end
  local deadline = fb.now() + 10000
  while pending > 0 and fb.now() < deadline do fb.sleep(5) end
  T.eq(codes, {[202] = 1, [409] = 49})
  local _, list = call("GET", "/api/jobs?skill=electrician-assistant")
  T.eq(list.total, 1)
  wait_state("electrician-assistant", "succeeded")
end)

-- Read SSE frames until `n` events arrived: {{event=, id=, data=}...}. Tips, which the stream
-- sends from its start and then on a timer, are skipped.
local function read_events(c, n)
  local events = {}
  while #events < n do
    c:read_until("\n\n", 5000)
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
  local _, body = call("POST", "/api/skills", {id = "sse", name = "SSE"})
  assert(body.skill)
  local c = open_events("sse")
  local snap = read_events(c, 1)[1]
  T.eq(snap.event, "snapshot")
  T.eq(fb.json.decode(snap.data).state, fb.json.null)
  local _, started = call("POST", "/api/train-skill/sse", {epochs = 1})
  local job = started.job.id
  local first = read_events(c, 3)
  c:close()
  T.eq(first[1].id, job .. ":1")
  wait_state("sse", "succeeded")
  local seq = select(2, call("GET", "/api/jobs/" .. job)).job.seq
  local again = open_events("sse", first[3].id)
  local rest = read_events(again, seq - 3)
  again:close()
  for i, ev in ipairs(rest) do T.eq(ev.id, job .. ":" .. (i + 3), "replayed id") end
  T.eq(fb.json.decode(rest[#rest].data).event, "state")
end, {timeout = 10000})

T.test("cancel and resume; the jobs list, one job, its log", function()
  local status, body = call("POST", "/api/train-skill/monday-expert", {max_steps = 1000})
  T.eq(status, 202)
  local id = body.job.id
  wait_state("monday-expert", "running")
  status, body = call("POST", "/api/training/cancel/monday-expert")
  T.eq({status, body.job.id}, {202, id})
  wait_state("monday-expert", "cancelled")
  T.eq((call("POST", "/api/training/cancel/monday-expert")), 409)
  status, body = call("POST", "/api/training/resume/monday-expert")
  T.eq({status, body.job.id, body.job.state}, {202, id, "running"})
  T.eq((call("POST", "/api/training/resume/monday-expert")), 409)
  T.eq((call("POST", "/api/train-skill/monday-expert")), 409)
  T.eq((call("POST", "/api/training/cancel/monday-expert")), 202)
  wait_state("monday-expert", "cancelled")
  status, body = call("GET", "/api/jobs?state=succeeded&per_page=1")
  T.eq({status, #body.jobs, body.total}, {200, 1, 3})
  T.eq((call("GET", "/api/jobs?state=bogus")), 400)
  T.eq((call("GET", "/api/jobs/nope")), 404)
  status, body = call("GET", "/api/jobs/" .. id .. "/log?lines=5")
  T.eq({status, body.job}, {200, id})
  T.eq((call("GET", "/api/jobs/" .. id .. "/log?lines=0")), 400)
end, {timeout = 10000})

T.test("teardown", function() server.stop(app) end)

T.run()
