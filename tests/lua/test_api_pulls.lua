-- Pulls through the server (fastbrain.api.pulls): `fastbrain serve` as a process of its own
-- against the Hub stand-in (tests/hub/standin_server.lua, sending slowly) with a cache of its
-- own: a pull as a task with progress over SSE to its end, one per repository (409), the model
-- then listed, trained on and named with its commit in the adapter; a cancel that leaves a
-- .incomplete the next pull resumes; a gated model refused with what to do, then pulled with a
-- token that shows up nowhere; bad requests.
-- Usage: fastbrain run tests/lua/test_api_pulls.lua path/to/fastbrain
local T = require "tests.lua.testing"
local server = require "tests.api.server"
local client = require "tests.http.client"
local fb = require "fastbrain"
local json = fb.json

local BIN = assert(arg[1], "usage: test_api_pulls.lua FASTBRAIN")
local TOKEN = "hf_cli_token"  -- the stand-in's for org/gated
local TINY = string.rep("5e", 20)  -- org/tiny's commit

local tmp = server.tmpdir()
local CACHE = tmp .. "/hf"
local function sh(cmd) assert(os.execute(cmd), "command failed: " .. cmd) end
local srv
local function call(...) return server.call(srv, ...) end

T.test("setup: the stand-in, then the server", function()
  assert(fb.fs.mkdir_p(tmp))
  sh(("%s run tests/hub/standin_server.lua %s/endpoint slow >%s/standin.log 2>&1 & echo $! >%s/standin.pid"):format(
    BIN, tmp, tmp, tmp))
  local endpoint = server.wait_until(function() return fb.fs.read(tmp .. "/endpoint") end, "the stand-in", 10000)
  srv = server.spawn(BIN, tmp .. "/data", {}, ("HF_ENDPOINT=%s HF_HUB_CACHE=%s FASTBRAIN_CACHE=%s/cache")
    :format(endpoint, CACHE, tmp))
end)

-- The task's SSE stream read to its end -> the events {type, task}.
local function events(id)
  local c = client.connect(srv.port)
  c:send(("GET /api/pulls/%d/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"):format(id))
  local text = c:read_until("event: done", 60000)
  if not text:find("event: done", 1, true) then text = c:read_until("event: error", 1000) end
  c:close()
  local out = {}
  for event, data in text:gmatch("event: (%w+)\r?\ndata: ([^\r\n]+)") do
    out[#out + 1] = {event, json.decode(data)}
  end
  return out
end

local function wait_state(id, ...)
  local want = {}
  for _, s in ipairs{...} do want[s] = true end
  return server.wait_until(function()
    local _, body = call("GET", "/api/pulls/" .. id)
    return want[body.task.state] and body.task
  end, "pull " .. id .. " to end", 60000)
end

T.test("a pull is a task: progress over SSE to its end; one per repository", function()
  local status, body = call("POST", "/api/pulls", {model = "org/tiny"})
  T.eq({status, body.task.state, body.task.repo}, {202, "running", "org/tiny"})
  local id = body.task.id
  local again, other = call("POST", "/api/pulls", {model = "org/tiny@main"})
  T.eq({again, other.task.id}, {409, id})
  local seen = events(id)
  T.eq(seen[1][1], "snapshot")
  local last = seen[#seen]
  T.eq({last[1], last[2].state, last[2].commit}, {"done", "succeeded", TINY})
  T.eq(last[2].done_bytes, last[2].total_bytes)
  local moving = 0
  for _, e in ipairs(seen) do
    if e[1] == "progress" and e[2].done_bytes > 0 and e[2].done_bytes < e[2].total_bytes then moving = moving + 1 end
  end
  T.eq(moving > 1, true, "progress while the weights came")
  local _, list = call("GET", "/api/pulls")
  T.eq(list.pulls[1].id, id)
end)

T.test("the pulled model is listed, trains, and the adapter names its commit", function()
  local _, body = call("GET", "/api/models/org/tiny")
  T.eq({body.model.source, body.model.supported, body.model.revision}, {"cache", true, TINY})
  server.fast_skill(srv, "pulled")
  T.eq((call("PATCH", "/api/skills/pulled", {base_model = "org/tiny"})), 200)
  T.eq((call("POST", "/api/train-skill/pulled", {max_steps = 3})), 202)
  local st = server.wait_state(srv, "pulled", "succeeded", "failed")
  T.eq(st.state, "succeeded", st.error)
  local config = json.decode((assert(fb.fs.read(st.adapter .. "/adapter_config.json"))))
  T.eq({config.base_model_name_or_path, config.revision}, {"org/tiny", TINY})
end)

T.test("cancel leaves the .incomplete; the next pull resumes it", function()
  local _, body = call("POST", "/api/pulls", {model = "org/llama"})
  local id = body.task.id
  server.wait_until(function()
    local _, b = call("GET", "/api/pulls/" .. id)
    return b.task.file == "model-00002-of-00002.safetensors" and b.task.done_bytes > 1700000
  end, "the second shard to move")
  T.eq((call("DELETE", "/api/pulls/" .. id)), 202)
  local t = wait_state(id, "cancelled", "failed")
  T.eq({t.state, t.code}, {"cancelled", "cancelled"})
  T.eq((call("DELETE", "/api/pulls/" .. id)), 409, "no longer running")
  local partial = io.popen(("ls %s/models--org--llama/blobs | grep -c incomplete"):format(CACHE)):read("a")
  T.eq(tonumber(partial), 1, "a .incomplete stays")
  _, body = call("POST", "/api/pulls", {model = "org/llama"})
  T.eq(wait_state(body.task.id, "succeeded", "failed").state, "succeeded")
  T.eq(fb.fs.read(("%s/models--org--llama/refs/main"):format(CACHE)), string.rep("1a", 20))
end)

T.test("a gated model: refused with what to do; a token pulls it and shows up nowhere", function()
  local _, body = call("POST", "/api/pulls", {model = "org/gated"})
  local t = wait_state(body.task.id, "succeeded", "failed")
  T.eq({t.state, t.code}, {"failed", "gated"})
  T.matches(t.error, "HF_TOKEN")
  _, body = call("POST", "/api/pulls", {model = "org/gated", token = TOKEN})
  T.eq(wait_state(body.task.id, "succeeded", "failed").state, "succeeded")
  local _, list, raw = call("GET", "/api/pulls")
  T.eq(#list.pulls >= 4, true)
  T.eq(raw.body:find(TOKEN, 1, true), nil, "not in the tasks")
  T.eq((fb.fs.read(srv.log) or ""):find(TOKEN, 1, true), nil, "not in the server's log")
end)

T.test("bad requests: the field named", function()
  local status, body = call("POST", "/api/pulls", {model = "not a model"})
  T.eq({status, body.error}, {400, "invalid request"})
  T.matches(body.fields.model, "ORG/NAME%[@REVISION%]")
  T.eq(select(2, call("POST", "/api/pulls", {model = "org/x", token = 5})).fields.token, "must be a string")
  T.eq((call("GET", "/api/pulls/999")), 404)
  T.eq((call("GET", "/api/pulls/abc")), 404)
end)

T.test("teardown", function()
  sh(("kill $(cat %s/standin.pid)"):format(tmp))
  server.close(srv)
  sh(("rm -rf '%s'"):format(tmp))
end)

T.run()
