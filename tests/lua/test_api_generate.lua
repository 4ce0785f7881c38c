-- POST /api/skills/:skill/generate and its status and SSE events, over real HTTP, with the
-- provider chain pointed at local OpenAI-compatible and Anthropic stand-ins.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local json = fb.json
local router = require "fastbrain.router"
local http = require "fastbrain.http_client"
local standin = require "tests.lua.standin"

local srv = standin.start()
local data_dir = os.tmpname()
os.remove(data_dir)
fb.fs.mkdir_p(data_dir .. "/skills/plumber")
fb.fs.write_atomic(data_dir .. "/skills/plumber/skill.json", json.encode({id = "plumber", name = "Plumber"}))
local function line(u, a) return json.encode({messages = {{role = "user", content = u}, {role = "assistant", content = a}}}) end
fb.fs.write_atomic(data_dir .. "/skills/plumber/data.jsonl", line("What are your hours?", "8 to 6.") .. "\n")

local chain = srv:chain()
local app = router.new()
require("fastbrain.api.generate").mount(app, {data_dir = data_dir, chain = chain})
local port = assert(app:listen{host = "127.0.0.1", port = 0})
local base = "http://127.0.0.1:" .. port

local function call(method, path, body)
  local res = assert(http.request{url = base .. path, method = method, body = body and json.encode(body),
                                  headers = {["content-type"] = "application/json"}})
  return res.status, json.decode(res.body)
end

-- The generation task's status once it stops running.
local function finished()
  local _, body
  repeat
    fb.sleep(20)
    _, body = call("GET", "/api/skills/plumber/generate")
  until body.task.state ~= "running"
  return body
end

T.test("a generation task runs, reports progress and appends what it kept", function(done)
  srv:queue("openai", {status = 200, delay = 150, json = standin.openai_ok(
    line("Can you fix a running toilet?", "Yes, ...") .. "\n" .. line("What are your hours?", "dup")).json})
  srv:queue("openai", standin.openai_ok(line("Do you work on Sundays?", "Emergencies only. ...")))
  fb.spawn(T.guard(done, function()
    local status, body = call("POST", "/api/skills/plumber/generate", {count = 2, batch = 2})
    T.eq(status, 202)
    T.eq(body.task.state, "running")
    status, body = call("POST", "/api/skills/plumber/generate", {count = 2})
    T.eq(status, 409)
    T.eq(body.error, "generation already running")
    body = finished()
    T.eq(body.task.state, "succeeded")
    T.eq(body.task.kept, 2)
    T.eq(body.task.dropped, {["exact duplicate"] = 1})
    T.eq(body.task.provider, "groq")
    T.eq(body.task.by_provider, {groq = 2})
    local n = 0
    for _ in io.lines(data_dir .. "/skills/plumber/data.jsonl") do n = n + 1 end
    T.eq(n, 3)
    done()
  end))
end)

T.test("a rate-limited provider falls back; the task records why and who answered", function(done)
  srv:queue("openai", standin.openai_error(429, "tokens", "rate_limit_exceeded", "Rate limit reached", {["retry-after"] = "30"}))
  srv:queue("anthropic", standin.anthropic_ok(line("Is a dripping tap urgent?", "Not usually. ...")))
  fb.spawn(T.guard(done, function()
    T.eq(call("POST", "/api/skills/plumber/generate", {count = 1}), 202)
    local body = finished()
    T.eq({body.task.state, body.task.provider, body.task.by_provider}, {"succeeded", "anthropic", {anthropic = 1}})
    T.eq(#body.task.fallbacks, 1)
    T.eq(body.task.fallbacks[1].provider, "groq")
    T.matches(body.task.fallbacks[1].reason, "^rate_limited: .*429")
    local rows = chain:status()
    T.eq({rows[1].name, rows[1].state}, {"groq", "cooling down"})
    done()
  end))
end)

T.test("the events stream starts with a snapshot", function(done)
  -- the stream stays open, so read its first event with a raw socket
  local cosocket = require "fastbrain.cosocket"
  fb.spawn(T.guard(done, function()
    local sock = assert(cosocket.connect("127.0.0.1", port, {timeout = 2000}))
    sock:send("GET /api/skills/plumber/generate/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    local seen = {}
    repeat
      local l = sock:receive("*l")
      seen[#seen + 1] = l
    until not l or l:find("^data:")
    sock:close()
    local text = table.concat(seen, "\n")
    T.matches(text, "event: snapshot")
    T.matches(text, '"state":"succeeded"')
    done()
  end))
end, {timeout = 3000})

T.test("the events stream carries progress, then done", function(done)
  -- Groq cools down since the fallback test: Anthropic answers both rounds.
  srv:queue("anthropic", standin.anthropic_ok(line("Do you unclog drains?", "Yes. ...")),
                         standin.anthropic_ok(line("Can you fit a new boiler?", "We can. ...")))
  local cosocket = require "fastbrain.cosocket"
  fb.spawn(T.guard(done, function()
    local sock = assert(cosocket.connect("127.0.0.1", port, {timeout = 3000}))
    sock:send("GET /api/skills/plumber/generate/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    repeat local l = sock:receive("*l") until l == ""  -- the response head
    repeat local l = sock:receive("*l") until l:find("^data:")  -- the snapshot of the last task
    T.eq(call("POST", "/api/skills/plumber/generate", {count = 2, batch = 1}), 202)
    local events = {}
    repeat
      local l = assert(sock:receive("*l"))
      local name = l:match("^event: (%w+)")
      if name then events[#events + 1] = name end
    until name == "done" or name == "error"
    sock:close()
    T.eq(events, {"progress", "progress", "done"})
    done()
  end))
end, {timeout = 5000})

T.test("bad requests", function(done)
  fb.spawn(T.guard(done, function()
    T.eq(call("POST", "/api/skills/plumber/generate", {count = 0}), 400)
    T.eq(call("POST", "/api/skills/plumber/generate", {count = 1000}), 400)
    T.eq(call("POST", "/api/skills/nosuch/generate", {count = 1}), 404)
    T.eq(call("POST", "/api/skills/BAD!/generate", {count = 1}), 400)
    T.eq(call("GET", "/api/skills/other/generate"), 404)
    fb.fs.mkdir_p(data_dir .. "/skills/fresh")
    fb.fs.write_atomic(data_dir .. "/skills/fresh/skill.json", json.encode({name = "Fresh"}))
    local status, body = call("GET", "/api/skills/fresh/generate")
    T.eq({status, body.task}, {200, json.null})
    done()
  end))
end)

T.test("a failing chain ends the task with its error and writes nothing", function(done)
  local before = fb.fs.read(data_dir .. "/skills/plumber/data.jsonl")
  srv:queue("openai", standin.openai_error(500, "server_error", nil, "down"))
  fb.spawn(T.guard(done, function()
    T.eq(call("POST", "/api/skills/plumber/generate", {count = 1}), 202)
    local body = finished()
    T.eq(body.task.state, "failed")
    T.matches(body.task.error, "no provider could answer")
    T.eq(fb.fs.read(data_dir .. "/skills/plumber/data.jsonl"), before)
    done()
  end))
end)

T.test("batch is checked, provider calls are capped, and a task cancels", function(done)
  fb.spawn(T.guard(done, function()
    -- batch 0 once made max_rounds infinite: a stand-in saw 3,900 requests in 15 s (issue 19)
    for _, bad in ipairs({0, -1, 21, 1.5, "5"}) do
      local status, body = call("POST", "/api/skills/plumber/generate", {count = 1, batch = bad})
      T.eq({status, body.fields and body.fields.batch}, {400, "an integer 1..20"})
    end
    local calls = 0
    srv:respond("anthropic", function()  -- answers that never hold an example
      calls = calls + 1
      return standin.anthropic_ok("Sorry, I cannot write that.")
    end)
    T.eq(call("POST", "/api/skills/plumber/generate", {count = 2, batch = 1}), 202)
    local body = finished()
    T.eq({body.task.state, body.task.calls, calls}, {"failed", 6, 6})  -- 3 rounds per batch needed
    T.eq(body.task.error, "0 of 2 kept after 6 provider calls")
    srv:respond("anthropic", function() calls = calls + 1; return {status = 200, delay = 100,
      json = standin.anthropic_ok("Still nothing.").json} end)
    calls = 0
    T.eq(call("POST", "/api/skills/plumber/generate", {count = 200, batch = 1}), 202)
    fb.sleep(150)
    local status, cancelled = call("POST", "/api/skills/plumber/generate/cancel")
    T.eq({status, cancelled.task.state}, {202, "running"})
    body = finished()
    T.eq({body.task.state, body.task.error}, {"cancelled", json.null})
    assert(calls <= 3, "calls after the cancel: " .. calls)
    T.eq(call("POST", "/api/skills/plumber/generate/cancel"), 409)
    srv:reset()
    done()
  end))
end)

T.test("a restarted server shows each skill's latest task; one it stopped in the middle failed", function(done)
  -- A fresh copy of the module is a restarted server: nothing of the tasks above is in memory.
  package.loaded["fastbrain.api.generate"] = nil
  local app2 = router.new()
  require("fastbrain.api.generate").mount(app2, {data_dir = data_dir, chain = chain})
  local port2 = assert(app2:listen{host = "127.0.0.1", port = 0})
  fb.fs.mkdir_p(data_dir .. "/skills/cut")
  fb.fs.write_atomic(data_dir .. "/skills/cut/skill.json", json.encode({name = "Cut"}))
  fb.fs.write_atomic(data_dir .. "/skills/cut/generate.json", json.encode(
    {id = 7, skill = "cut", state = "running", count = 5, kept = 0, dropped = {}, by_provider = {}, fallbacks = {}}))
  fb.fs.mkdir_p(data_dir .. "/skills/garbled")
  fb.fs.write_atomic(data_dir .. "/skills/garbled/skill.json", json.encode({name = "Garbled"}))
  fb.fs.write_atomic(data_dir .. "/skills/garbled/generate.json", "{not json")
  local function get(path)
    local res = assert(http.request{url = "http://127.0.0.1:" .. port2 .. path})
    return res.status, json.decode(res.body)
  end
  fb.spawn(T.guard(done, function()
    local _, before = call("GET", "/api/skills/plumber/generate")  -- the first server's answer
    local status, body = get("/api/skills/plumber/generate")
    T.eq(status, 200)
    T.eq(body.task, before.task)
    status, body = get("/api/skills/cut/generate")
    T.eq({status, body.task.id, body.task.state, body.task.error}, {200, 7, "failed", "interrupted: the server stopped while it ran"})
    status, body = get("/api/skills/garbled/generate")
    T.eq({status, body.task}, {200, json.null})
    app2:close(0)
    done()
  end))
end)

T.test("clean up", function()
  app:close(0)
  srv:close()
  os.execute("rm -rf " .. data_dir)
end)

T.run()
