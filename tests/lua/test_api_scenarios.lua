-- The scenarios API over real HTTP (scripts/serve.lua in-process): list, replace (JSONL or a
-- JSON list, validated whole: bad lines named, the file untouched), add one (409 for a taken
-- id), replace one, delete one; a broken file on disk is a 422 naming its line; the bundled
-- skills arrive with their bundled sets, also in a data directory made before there were any.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local server = require "tests.api.server"

local app = server.start()
local BASE = "/api/skills/front-desk/scenarios"
local USER = {{role = "user", content = "Can you come today?"}}
local function scenario(id, extra)
  local s = {id = id, messages = USER, checks = {ends_with_question = true}}
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

T.test("a new skill has none; a replacement is validated whole, by line", function()
  T.eq(server.call(app, "POST", "/api/skills", {id = "front-desk", name = "Front desk"}), 201)
  local status, body = server.call(app, "GET", BASE)
  T.eq({status, #body.scenarios}, {200, 0})
  local jsonl = fb.json.encode(scenario("a")) .. "\n" .. fb.json.encode(scenario("b", {rubric = "kind"})) .. "\n"
  status, body = server.call(app, "PUT", BASE, jsonl, "application/x-ndjson")
  T.eq({status, #body.scenarios}, {200, 2})
  local bad = fb.json.encode(scenario("c")) .. "\n" .. '{"id": "d", "messages": []}' .. "\n"
  status, body = server.call(app, "PUT", BASE, bad, "application/x-ndjson")
  T.eq(status, 400)
  T.eq(body.lines, {{line = 2, message = "messages: a non-empty list of turns"}})
  T.eq(#select(2, server.call(app, "GET", BASE)).scenarios, 2)  -- untouched
  status, body = server.call(app, "PUT", BASE, {scenarios = {scenario("x"), scenario("y"), scenario("z")}})
  T.eq({status, #body.scenarios}, {200, 3})
end)

T.test("one at a time: add, replace, delete", function()
  local status, body = server.call(app, "POST", BASE, scenario("w", {rubric = "asks for the address"}))
  T.eq({status, body.scenario.id}, {201, "w"})
  status, body = server.call(app, "POST", BASE, scenario("w"))
  T.eq(status, 409)
  T.matches(body.error, 'scenario "w" exists')
  status, body = server.call(app, "POST", BASE, {id = "v", messages = USER, checks = {max_words = -1}})
  T.eq(status, 400)
  T.matches(body.error, "checks.max_words: an integer >= 1")
  status, body = server.call(app, "PUT", BASE .. "/w", {messages = USER, checks = {max_words = 40}})
  T.eq({status, body.scenario.id, body.scenario.checks.max_words}, {200, "w", 40})
  T.eq(server.call(app, "PUT", BASE .. "/w", scenario("other")), 400)
  T.eq(server.call(app, "PUT", BASE .. "/nope", scenario("nope")), 404)
  T.eq(server.call(app, "DELETE", BASE .. "/x"), 200)
  T.eq(server.call(app, "DELETE", BASE .. "/x"), 404)
  local ids = {}
  for _, s in ipairs(select(2, server.call(app, "GET", BASE)).scenarios) do ids[#ids + 1] = s.id end
  T.eq(ids, {"y", "z", "w"})
  T.eq(server.call(app, "GET", "/api/skills/no-such/scenarios"), 404)
end)

T.test("a file broken on disk is a 422 naming its line; a replacement mends it", function()
  local path = app.data_dir .. "/skills/front-desk/scenarios.jsonl"
  assert(fb.fs.write_atomic(path, fb.json.encode(scenario("ok")) .. "\n{oops\n"))
  local status, body = server.call(app, "GET", BASE)
  T.eq(status, 422)
  T.matches(body.error, "scenarios.jsonl: 1 bad line%(s%), line 2: not valid JSON")
  T.eq(server.call(app, "POST", BASE, scenario("more")), 422)
  T.eq(server.call(app, "PUT", BASE, {scenario("ok")}), 200)
  T.eq(server.call(app, "GET", BASE), 200)
end)

T.test("bundled skills come with their scenarios, in old data directories too", function()
  local share, sets = fb.root .. "/share/skills", 0
  for _, id in ipairs(fb.fs.list(share)) do
    local want = fb.fs.read(share .. "/" .. id .. "/scenarios.jsonl")
    if want then
      sets = sets + 1
      local status, body = server.call(app, "GET", "/api/skills/" .. id .. "/scenarios")
      T.eq({status, #body.scenarios > 0}, {200, true})
      local path = app.data_dir .. "/skills/" .. id .. "/scenarios.jsonl"
      os.remove(path)  -- as a data directory from before scenarios
      require("fastbrain.api.scenarios").install_bundled(app.data_dir, fb.root .. "/share")
      T.eq(fb.fs.read(path), want)
    end
  end
  T.eq(sets, 3)
end)

T.test("clean up", function() server.stop(app) end)

T.run()
