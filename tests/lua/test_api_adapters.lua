-- The adapters API over real HTTP: a real adapter trained in-process on a tiny random model
-- (fb_make_tiny_model, arg[2]) is listed with its badge, read, and deleted; bad ids, unknown
-- versions and a live job's skill are refused.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local server = require "tests.api.server"
local adapters = require "fastbrain.api.adapters"

local app = server.start()
local model = app.data_dir .. "/tiny-model"
assert(os.execute(string.format("%q %q", arg[2], model)), "fb_make_tiny_model failed")

local data = app.data_dir .. "/train.jsonl"
local f = assert(io.open(data, "w"))
for i = 0, 9 do
  f:write(fb.json.encode({messages = {{role = "user", content = "q" .. i}, {role = "assistant", content = "a" .. i}}}), "\n")
end
f:close()

T.test("badges follow the documented rule", function()
  T.eq(adapters.badge(0.1), "excellent")
  T.eq(adapters.badge(0.3), "good")
  T.eq(adapters.badge(0.7), "fair")
  T.eq(adapters.badge(3.2), "needs work")
  T.eq(adapters.badge(nil), "unknown")
end)

T.test("a trained adapter is listed, read and deleted", function()
  local out = app.data_dir .. "/adapters/tiny-skill/20261129-120000"
  local summary = assert(fb.train.run({model = model, data = data, out = out, max_steps = 4,
                                       eval = {fraction = 0.2}}))
  local status, body = server.call(app, "GET", "/api/adapters")
  T.eq(status, 200)
  T.eq(#body.adapters, 1)
  local a = body.adapters[1]
  T.eq(a.skill, "tiny-skill")
  T.eq(a.version, "20261129-120000")
  T.eq(a.examples, summary.examples)
  T.eq(a.status, adapters.badge(summary.eval_loss))
  T.eq(body.badge_rule[1], {below = 0.3, badge = "excellent"})
  status, body = server.call(app, "GET", "/api/adapters/tiny-skill/20261129-120000")
  T.eq(status, 200)
  T.eq(body.config.peft_type, "LORA")
  T.eq(body.summary.steps, summary.steps)
  -- the preview: the adapter's answer beside the base model's
  status, body = server.call(app, "POST", "/api/adapters/tiny-skill/20261129-120000/generate",
                             {prompt = "q3", max_tokens = 8})
  T.eq(status, 200)
  T.eq(body.prompt, "q3")
  T.eq(type(body.adapter), "string")
  T.eq(type(body.base), "string")
  T.eq(server.call(app, "POST", "/api/adapters/tiny-skill/20261129-120000/generate", {prompt = ""}), 400)
  T.eq(server.call(app, "POST", "/api/adapters/tiny-skill/20261129-120000/generate", {prompt = "a\0b"}), 400)
  -- The prompt reaches the model as it is: the shell running the child never interprets it.
  local marker = app.data_dir .. "/injected"
  status = server.call(app, "POST", "/api/adapters/tiny-skill/20261129-120000/generate",
                       {prompt = ("it's $(touch %s) `touch %s` '; touch %s; '"):format(marker, marker, marker), max_tokens = 2})
  T.eq({status, (fb.fs.mode(marker))}, {200, nil})
  T.eq(server.call(app, "POST", "/api/adapters/tiny-skill/20261129-120000/generate",
                   {prompt = "x", max_tokens = 100000}), 400)
  T.eq(server.call(app, "POST", "/api/adapters/tiny-skill/nope/generate", {prompt = "x"}), 404)
  status, body = server.call(app, "POST", "/api/adapters/tiny-skill/20261129-120000/generate",
                             {prompt = string.rep("long prompt ", 300)})
  T.eq(status, 422)
  T.matches(body.error, "^cannot answer: .*context")
  status = server.call(app, "DELETE", "/api/adapters/tiny-skill/20261129-120000")
  T.eq(status, 200)
  T.eq(fb.fs.mode(out), nil)
  status, body = server.call(app, "GET", "/api/adapters")
  T.eq(#body.adapters, 0)
end)

T.test("bad ids and unknown versions", function()
  T.eq(server.call(app, "GET", "/api/adapters/tiny-skill/nope"), 404)
  T.eq(server.call(app, "GET", "/api/adapters/BAD!/v1"), 400)
  T.eq(server.call(app, "GET", "/api/adapters/x/..%2F..%2Fskills"), 400)
  T.eq(server.call(app, "DELETE", "/api/adapters/x/nope"), 404)
end)

T.test("an adapter of a skill whose training is live is not deleted", function()
  server.fast_skill(app, "busy")
  local out = app.data_dir .. "/adapters/busy/v1"
  fb.fs.mkdir_p(out)
  fb.fs.write_atomic(out .. "/summary.json", '{"examples": 3, "final_loss": 0.2}')
  local status = server.call(app, "POST", "/api/train-skill/busy", {max_steps = 100000})
  T.eq(status, 202)
  local st, body = server.call(app, "DELETE", "/api/adapters/busy/v1")
  T.eq(st, 409)
  T.matches(body.error, "cancel it first")
  T.eq(server.call(app, "POST", "/api/training/cancel/busy"), 202)
  server.wait_state(app, "busy", "cancelled")
end)

T.test("clean up", function() server.stop(app) end)

T.run()
