-- A skill's data one example at a time, its stats in the base model's tokens, and provider keys
-- set through the API, over real HTTP. Examples: added, replaced and deleted by number, checked
-- as an upload is (a refused one leaves the data byte for byte). Keys: `fastbrain serve` as a
-- process of its own on loopback writes the keys file as mode 0600, GET never returns the value,
-- and neither the server's log nor a refusal contains it; a server listening beyond loopback
-- does not offer the form and refuses it.
local T = require "tests.lua.testing"
local server = require "tests.api.server"
local client = require "tests.http.client"
local fb = require "fastbrain"
local json = fb.json

local bin = assert(arg[1], "usage: fastbrain run tests/lua/test_api_data.lua PATH-TO-FASTBRAIN")

local function example(user, answer)
  return {messages = {{role = "user", content = user}, {role = "assistant", content = answer}}}
end

T.test("one example at a time: add, replace, delete by number, checked as an upload", function()
  local app = server.start()
  local function call(...) return server.call(app, ...) end
  T.eq(call("POST", "/api/skills", {id = "ex", name = "Examples"}), 201)
  local status, body = call("POST", "/api/skills/ex/examples", example("Open today?", "Until six."))
  T.eq({status, body.examples, body.added}, {200, 1, 1})
  call("POST", "/api/skills/ex/examples", example("Parking?", "Behind the shop."))
  call("POST", "/api/skills/ex/examples", example("Cards?", "All of them."))
  local path = app.data_dir .. "/skills/ex/data.jsonl"

  status, body = call("PUT", "/api/skills/ex/examples/2", example("Parking nearby?", "Yes, free."))
  T.eq({status, body.line, body.examples}, {200, 2, 3})
  local _, page = call("GET", "/api/skills/ex/data")
  T.eq(page.examples[2].example.messages[1].content, "Parking nearby?")
  T.eq(page.examples[3].example.messages[1].content, "Cards?")

  local before = fb.fs.read(path)
  status, body = call("PUT", "/api/skills/ex/examples/1", {messages = {{role = "robot", content = "hi"}}})
  T.eq(status, 400)
  T.matches(body.lines[1].message, "robot")
  T.eq(select(2, call("PUT", "/api/skills/ex/examples/1", {1, 2})).error, "body: one example (a JSON object) expected")
  T.eq(select(2, call("PUT", "/api/skills/ex/examples/9", example("a", "b"))).error, "no example 9")
  T.eq(select(2, call("DELETE", "/api/skills/ex/examples/0")).error, "line: an integer >= 1")
  T.eq(select(2, call("DELETE", "/api/skills/ex/examples/x")).error, "line: an integer >= 1")
  T.eq(fb.fs.read(path), before, "refusals leave the data byte for byte")

  status, body = call("DELETE", "/api/skills/ex/examples/1")
  T.eq({status, body.examples}, {200, 2})
  _, page = call("GET", "/api/skills/ex/data")
  T.eq({page.examples[1].example.messages[1].content, page.examples[2].example.messages[1].content},
       {"Parking nearby?", "Cards?"})
  T.eq(#fb.fs.list(app.data_dir .. "/skills/ex"), 2, "no temp files left: skill.json and data.jsonl")
  server.stop(app)
end)

T.test("stats count the base model's tokens and cut where a run on it would", function()
  local app = server.start()
  local function call(...) return server.call(app, ...) end
  call("POST", "/api/skills", {id = "long", name = "Long", defaults = {max_len = 32}})
  local words = ("the quick brown fox jumps over the lazy dog "):rep(8)
  call("POST", "/api/skills/long/examples", example("Tell me a story.", words))
  call("POST", "/api/skills/long/examples", example("Short?", "Yes."))
  local status, body = call("GET", "/api/skills/long/stats")
  T.eq({status, body.tokenizer, body.stats.examples, body.stats.limit}, {200, "tiny", 2, 32})
  T.eq(body.stats.truncated, 1)
  -- fewer tokens than the bytes a byte count would give: a real tokenizer
  local bytes = #fb.fs.read(app.data_dir .. "/skills/long/data.jsonl")
  T.eq(body.stats.tokens < bytes / 2, true, ("%d tokens for %d bytes"):format(body.stats.tokens, bytes))
  server.stop(app)
end)

local SECRET = "gsk_api_canary_5d2c81"

T.test("keys: written 0600 on loopback, never sent back, never logged", function()
  local srv <close> = server.spawn(bin, server.tmpdir(), {}, "GROQ_API_KEY= ANTHROPIC_API_KEY= FASTBRAIN_KEYS=")
  local _, body = server.call(srv, "GET", "/api/providers")
  T.eq({body.keys.form, body.keys.file}, {true, srv.data_dir .. "/keys"})
  T.eq(body.keys.vars[1], {name = "GROQ_API_KEY", provider = "groq", source = json.null,
                           problem = "GROQ_API_KEY is not set (environment or " .. srv.data_dir .. "/keys)"})

  local status, r
  status, _, r = server.call(srv, "POST", "/api/providers/keys", {name = "NOPE", value = SECRET})
  T.eq(status, 400)
  T.eq(r.body:find(SECRET, 1, true), nil, "a refusal does not echo the value")
  status, body, r = server.call(srv, "POST", "/api/providers/keys", {name = "GROQ_API_KEY", value = SECRET .. "\nX=1"})
  T.eq({status, body.fields.value}, {400, "must be 1..1000 letters, digits or -_.~+/=:"})
  T.eq(r.body:find(SECRET, 1, true), nil)

  status, body, r = server.call(srv, "POST", "/api/providers/keys", {name = "GROQ_API_KEY", value = SECRET})
  T.eq(status, 200)
  T.eq(r.body:find(SECRET, 1, true), nil, "the answer does not carry the value")
  T.eq(body.keys.vars[1].source, "file")
  T.eq(body.providers[1].state ~= "unusable", true)
  local file = srv.data_dir .. "/keys"
  T.eq(fb.fs.mode(file), 384, "mode 0600")
  T.eq(fb.fs.read(file), "GROQ_API_KEY=" .. SECRET .. "\n")
  -- a second key keeps the first; a new value replaces the old line
  server.call(srv, "POST", "/api/providers/keys", {name = "ANTHROPIC_API_KEY", value = "sk-ant-2"})
  server.call(srv, "POST", "/api/providers/keys", {name = "GROQ_API_KEY", value = SECRET .. "b"})
  T.eq(fb.fs.read(file), "ANTHROPIC_API_KEY=sk-ant-2\nGROQ_API_KEY=" .. SECRET .. "b\n")
  T.eq(fb.fs.mode(file), 384)

  local _, _, got = server.call(srv, "GET", "/api/providers")
  T.eq(got.body:find(SECRET, 1, true), nil, "GET never returns the key")
  T.eq(fb.fs.read(srv.log):find(SECRET, 1, true), nil, "the log never holds the key")
end, {timeout = 60000})

T.test("keys: no form on a server listening beyond loopback", function()
  local app = server.start("--host", "0.0.0.0", "--token", "tok-data-test")
  local function call(method, path, body)
    local r = client.request(app.port, method, path, {body = body and json.encode(body),
      headers = {["Content-Type"] = "application/json", Authorization = "Bearer tok-data-test"}})
    return r.status, json.decode(r.body)
  end
  T.eq(select(2, call("GET", "/api/providers")).keys.form, false)
  local status, body = call("POST", "/api/providers/keys", {name = "GROQ_API_KEY", value = SECRET})
  T.eq(status, 403)
  T.matches(body.error, "loopback")
  T.eq(fb.fs.mode(app.data_dir .. "/keys"), nil, "nothing written")
  server.stop(app)
end)
T.run()
