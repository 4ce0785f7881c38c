-- The skills API over real HTTP against scripts/serve.lua in-process: the bundled skills
-- installed on first start, create/read/replace/delete, bad ids, and dataset uploads
-- (validated with errors by line, nothing written when invalid; bad bytes and duplicated keys
-- too), paging and stats.
local T = require "tests.lua.testing"
local server = require "tests.api.server"
local fb = require "fastbrain"

local app = server.start()
local function call(...) return server.call(app, ...) end

local GOOD = '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n'
local BAD = '{"messages":[{"role":"robot","content":"hi"}]}\n'

T.test("the bundled skills are installed and listed with their example counts", function()
  local status, body = call("GET", "/api/skills")
  T.eq(status, 200)
  local ids = {}
  for i, s in ipairs(body.skills) do
    ids[i] = s.id
    T.eq(s.examples > 0, true, s.id .. " examples")
  end
  T.eq(ids, {"electrician-assistant", "monday-expert", "plumbing-receptionist"})
  local _, one = call("GET", "/api/skills/plumbing-receptionist")
  T.eq(one.skill.avatar.emoji, "🔧")
end)

T.test("create, read, replace, delete a skill", function()
  local skill = {id = "roofer", name = "Roofer", description = "roofs", template = "chatml",
                 avatar = {emoji = "🏠", color = "#aa3300"}, sample_prompts = {"leak?"},
                 defaults = {epochs = 2, lora = {r = 8}}}
  local status, body = call("POST", "/api/skills", skill)
  T.eq(status, 201)
  T.eq(body.skill.id, "roofer")
  T.eq(body.skill.examples, 0)
  T.eq((call("POST", "/api/skills", skill)), 409)
  status, body = call("PUT", "/api/skills/roofer", {name = "Roofer 2"})
  T.eq({status, body.skill.name, body.skill.description}, {200, "Roofer 2", nil})
  T.eq(select(2, call("GET", "/api/skills/roofer")).skill.name, "Roofer 2")
  T.eq((call("DELETE", "/api/skills/roofer")), 200)
  T.eq((call("GET", "/api/skills/roofer")), 404)
  T.eq(fb.fs.mode(app.data_dir .. "/skills/roofer"), nil)
end)

T.test("bad skills are refused field by field", function()
  local status, body = call("POST", "/api/skills", {id = "x", avatar = {color = "red"}, template = "nope",
                                                    defaults = {epochs = 0}, extra = 1})
  T.eq(status, 400)
  T.eq(body.error, "invalid skill")
  T.eq(body.fields.name, "is required")
  T.eq(body.fields.extra, "unknown field")
  T.matches(body.fields.avatar, "color")
  T.matches(body.fields.template, "one of")
  T.matches(body.fields.defaults, "^epochs: must be an integer")
  T.eq(select(2, call("POST", "/api/skills", {id = "../x", name = "x"})).fields.id, "must match [a-z0-9_-]{1,64}")
  T.eq((call("POST", "/api/skills", "[1,2")), 400)
  -- LoRA targets as the trainer reads them, so a bad one is refused here, not by a failed job
  for targets, want in pairs({["../../x"] = "%[1%]: must be a distinct one of q_proj",
                              ["q_proj, q_proj"] = "%[2%]: must be a distinct",
                              [""] = "%[1%]: must be a distinct"}) do
    body = select(2, call("POST", "/api/skills", {id = "t", name = "t", defaults = {lora = {targets = targets}}}))
    T.matches(body.fields.defaults, "^lora.targets: " .. want)
  end
  body = select(2, call("POST", "/api/skills", {id = "t", name = "t", defaults = {lora = {targets = {"v_proj", 7}}}}))
  T.matches(body.fields.defaults, "^lora.targets: %[2%]")
  for _, ok in ipairs({"all-linear", "q_proj, v_proj", {"q_proj", "down_proj"}}) do
    T.eq(call("POST", "/api/skills", {id = "t", name = "t", defaults = {lora = {targets = ok}}}), 201)
    T.eq(call("DELETE", "/api/skills/t"), 200)
  end
end)

T.test("bad ids are 400 and unknown skills 404 on every route", function()
  for _, path in ipairs({"/api/skills/..%2Fx", "/api/skills/UP", "/api/skills/" .. ("a"):rep(65),
                         "/api/skills/..%2Fx/data", "/api/skills/a%20b/stats"}) do
    local status, body = call("GET", path)
    T.eq(status, 400, path)
    T.matches(body.error, "%[a%-z0%-9_%-%]")
  end
  T.eq((call("GET", "/api/skills/nobody")), 404)
  T.eq((call("PUT", "/api/skills/nobody/data", GOOD, "application/x-ndjson")), 404)
  T.eq((call("DELETE", "/api/skills/nobody")), 404)
end)

T.test("dataset: invalid uploads list bad lines and write nothing", function()
  assert(call("POST", "/api/skills", {id = "ds", name = "Dataset"}) == 201)
  local status, body = call("PUT", "/api/skills/ds/data", GOOD .. BAD .. "not json\n" .. GOOD,
                            "application/x-ndjson")
  T.eq(status, 400)
  T.matches(body.error, "2 bad line")
  T.eq({body.lines[1].line, body.lines[2].line}, {2, 3})
  T.matches(body.lines[1].message, "role")
  T.eq(fb.fs.read(app.data_dir .. "/skills/ds/data.jsonl"), nil)
  T.eq(select(2, call("GET", "/api/skills/ds/data")).total, 0)
end)

T.test("dataset: a line with invalid UTF-8, a NUL or a duplicated key is refused by line", function()
  local bad = {
    '{"messages":[{"role":"user","content":"caf\xC3"},{"role":"assistant","content":"b"}]}\n',
    '{"messages":[{"role":"user","content":"a\0b"},{"role":"assistant","content":"b"}]}\n',
    '{"messages":[{"role":"user","content":"a","content":"b"},{"role":"assistant","content":"b"}]}\n',
  }
  local status, body = call("PUT", "/api/skills/ds/data", GOOD .. table.concat(bad), "application/x-ndjson")
  T.eq(status, 400)
  T.eq(body.lines, {{line = 2, message = "invalid UTF-8 (column 43)"}, {line = 3, message = "a NUL byte (column 41)"},
                    {line = 4, message = 'duplicate key "content"'}})
  T.eq(call("GET", "/api/skills/ds/data"), 200)  -- nothing stored breaks the data view
end)

T.test("dataset: replace, append (JSONL or JSON), page, stats", function()
  local status, body = call("PUT", "/api/skills/ds/data", GOOD .. GOOD, "application/x-ndjson")
  T.eq({status, body.examples, body.added}, {200, 2, 2})
  status, body = call("POST", "/api/skills/ds/data", fb.json.decode("[" .. GOOD .. "]"))
  T.eq({status, body.examples, body.added}, {200, 3, 1})
  status, body = call("POST", "/api/skills/ds/data", BAD, "application/x-ndjson")
  T.eq({status, body.lines[1].line}, {400, 1})
  T.eq(select(2, fb.fs.read(app.data_dir .. "/skills/ds/data.jsonl"):gsub("\n", "")), 3)
  status, body = call("GET", "/api/skills/ds/data?page=2&per_page=2")
  T.eq({status, body.total, #body.examples, body.examples[1].line}, {200, 3, 1, 3})
  T.eq(body.examples[1].example.messages[2].content, "hello")
  T.eq((call("GET", "/api/skills/ds/data?page=0")), 400)
  status, body = call("GET", "/api/skills/ds/stats")
  T.eq({status, body.stats.examples}, {200, 3})
  T.eq(body.stats.duplicate_prompts > 0, true)
end)

T.test("teardown", function() server.stop(app) end)

T.run()
