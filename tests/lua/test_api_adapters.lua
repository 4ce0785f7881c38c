-- The adapters API over real HTTP: a real adapter trained in-process on a tiny random model
-- (fb_make_tiny_model, arg[2]) is listed with its badge, read, and deleted; bad ids, unknown
-- versions and a live job's skill are refused; a client that leaves a preview stops its child
-- processes. The trainer's output appears in one step (no directory at `out` until it is
-- whole), also over an existing `out` and after a kill cut the replacement short; its hidden
-- partial directories are never listed.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local server = require "tests.api.server"
local client = require "tests.http.client"
local adapters = require "fastbrain.api.adapters"

local app = server.start()
local model = app.data_dir .. "/tiny-model"
assert(os.execute(string.format("%q %q", arg[2], model)), "fb_make_tiny_model failed")

local data = app.data_dir .. "/train.jsonl"
server.write_examples(data)

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
  T.eq(a.base_eval_loss, summary.base_eval_loss)
  T.eq(type(a.base_eval_loss), "number")
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
  -- the download: the PEFT files, the training record and a README, under one directory
  local r = client.request(app.port, "GET", "/api/adapters/tiny-skill/20261129-120000/download")
  T.eq(r.status, 200)
  T.eq(r.headers["content-type"], "application/gzip")
  T.eq(r.headers["content-disposition"], 'attachment; filename="tiny-skill-20261129-120000.tar.gz"')
  local unpacked = app.data_dir .. "/unpacked"
  assert(fb.fs.mkdir_p(unpacked) and fb.fs.write_atomic(unpacked .. ".tar.gz", r.body))
  T.eq(os.execute(("tar -xzf %q -C %q"):format(unpacked .. ".tar.gz", unpacked)), true)
  local got = unpacked .. "/tiny-skill-20261129-120000"
  T.eq(fb.fs.list(got), {"README.md", "adapter_config.json", "adapter_model.safetensors", "summary.json"})
  T.eq(fb.fs.read(got .. "/adapter_model.safetensors"), fb.fs.read(out .. "/adapter_model.safetensors"))
  local readme = fb.fs.read(got .. "/README.md")
  for _, want in ipairs({'PeftModel.from_pretrained(base, "tiny-skill-20261129-120000")',
                         ("AutoModelForCausalLM.from_pretrained(%q)"):format(model),
                         ("Held-out loss %.3f, the base model's %.3f"):format(summary.eval_loss, summary.base_eval_loss)}) do
    assert(readme:find(want, 1, true), "README.md: " .. want)
  end
  T.eq(client.request(app.port, "GET", "/api/adapters/tiny-skill/nope/download").status, 404)
  status = server.call(app, "DELETE", "/api/adapters/tiny-skill/20261129-120000")
  T.eq(status, 200)
  T.eq(fb.fs.mode(out), nil)
  status, body = server.call(app, "GET", "/api/adapters")
  T.eq({status, #body.adapters}, {200, 0})
end)

T.test("previews share one model process; a client that leaves stops its two answers", function()
  local version = "20261129-130000"
  assert(fb.train.run({model = model, data = data, out = app.data_dir .. "/adapters/tiny-skill/" .. version,
                       max_steps = 2, eval = {fraction = 0.2}}))
  local path = ("/api/adapters/tiny-skill/%s/generate"):format(version)
  local cmd = "model-server --model " .. model .. " "
  T.eq(server.call(app, "POST", path, {prompt = "q1", max_tokens = 4}), 200)
  local kids = server.pids(cmd)
  T.eq(#kids, 1)
  T.eq(server.call(app, "POST", path, {prompt = "q2", max_tokens = 4}), 200)
  T.eq(server.pids(cmd), kids)  -- the same process: none is started per request
  local function served()
    local _, health = server.call(app, "GET", "/api/health")
    for _, m in ipairs(health.models) do if m.model == model then return m end end
  end
  local before = served()
  -- The model process, frozen, has both answers in hand when the client leaves.
  server.kill(kids[1], "STOP")
  local body = fb.json.encode({prompt = "q1", max_tokens = 200})
  local c = client.connect(app.port)
  c:send(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" ..
          "Content-Length: %d\r\n\r\n%s"):format(path, #body, body))
  local ok, err = pcall(server.wait_until, function() return served().active == 2 end, "two answers in flight", 5000)
  c.s:close()
  fb.sleep(300)  -- the server (this process's loop) sees the client go and sends the cancels
  server.kill(kids[1], "CONT")
  assert(ok, err)
  server.wait_until(function() return served().cancelled == before.cancelled + 2 end, "both answers cancelled", 5000)
  T.eq(served().answered, before.answered)
  T.eq(served().active, 0)
  T.eq((server.call(app, "GET", "/api/health")), 200)
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

-- ---- the output appears whole, in one step ----------------------------------------------

local OUTPUT = {"adapter_config.json", "adapter_model.safetensors", "example_losses.json", "summary.json"}

local function entries(dir)
  local list = fb.fs.list(dir) or {}
  table.sort(list)
  return list
end

local function with_output(...)
  local list = {...}
  for _, f in ipairs(OUTPUT) do list[#list + 1] = f end
  table.sort(list)
  return list
end

-- Train into skill/version (fresh, or resuming): the events' {name, entries of out} as seen
-- when each came, and the summary.
local function train(version, extra, opts)
  local out = app.data_dir .. "/adapters/out-skill/" .. version
  local spec = {model = model, data = data, out = out, max_steps = 4, eval = {fraction = 0.2},
                checkpoint_interval = 2}
  for k, v in pairs(extra or {}) do spec[k] = v end
  local seen = {}
  local summary = assert(fb.train.run(spec, {on_event = function(ev)
    seen[#seen + 1] = {event = ev.event, out = fb.fs.mode(out) and entries(out), ev = ev}
  end}, opts))
  return out, seen, summary
end

T.test("a job's output directory appears only when whole, beside nothing", function()
  local _, seen = train("v1", {checkpoints = app.data_dir .. "/ck-v1"})
  T.eq(seen[#seen].event, "done")
  for i = 1, #seen - 1 do T.eq(seen[i].out, nil, "out at event " .. i .. " (" .. seen[i].event .. ")") end
  T.eq(seen[#seen].out, with_output())
  T.eq(entries(app.data_dir .. "/adapters/out-skill"), {"v1"})  -- no partial directory left
end)

T.test("with its checkpoints inside, out holds nothing else until the output is whole", function()
  local out, seen = train("v2")
  for i = 1, #seen - 1 do
    assert(seen[i].out == nil or (#seen[i].out == 1 and seen[i].out[1] == "checkpoints"),
           "out at event " .. i .. ": " .. table.concat(seen[i].out or {}, " "))
  end
  T.eq(seen[#seen].out, with_output("checkpoints"))
  T.eq(entries(app.data_dir .. "/adapters/out-skill"), {"v1", "v2"})
  -- Run again over it (resuming at its last step): replaced whole, the checkpoints kept.
  local _, again = train("v2", nil, {resume = true})
  T.eq(again[1].ev.resumed_from_step, 4)
  T.eq(again[#again].out, with_output("checkpoints"))
  T.eq(entries(app.data_dir .. "/adapters/out-skill"), {"v1", "v2"})
  T.eq(fb.json.decode(fb.fs.read(out .. "/summary.json")).steps, 4)
end)

local function sh(cmd) assert(os.execute(cmd), cmd) end

T.test("an output that fails half-way leaves no directory, and no partial one", function()
  local root = app.data_dir .. "/adapters/out-skill"
  local out = root .. "/v3"
  local spec = {model = model, data = data, out = out, max_steps = 2, checkpoints = app.data_dir .. "/ck-v3"}
  -- At the last checkpoint (just before the output), block example_losses.json: the adapter
  -- files are written, then the output fails.
  local summary, err = fb.train.run(spec, {on_event = function(ev)
    if ev.event == "checkpoint" and ev.step == 2 then fb.fs.mkdir_p(root .. "/.v3.partial/example_losses.json/x") end
  end})
  T.eq(summary, nil)
  T.matches(err, "example_losses.json")
  T.eq(fb.fs.mode(out), nil)
  T.eq(entries(root), {"v1", "v2"})
end)

T.test("a replacement a kill cut short is undone or finished by the next run", function()
  local root = app.data_dir .. "/adapters/out-skill"
  -- Killed with out stepped aside and the new output not yet renamed into place: undone.
  sh(("mv %q %q && mkdir %q && echo junk > %q"):format(root .. "/v2", root .. "/.v2.replaced",
     root .. "/.v2.partial", root .. "/.v2.partial/summary.json"))
  local _, adapters_listed = server.call(app, "GET", "/api/adapters")
  for _, a in ipairs(adapters_listed.adapters) do
    assert(a.version:sub(1, 1) ~= ".", "a hidden directory is listed: " .. a.version)
  end
  T.eq(server.call(app, "GET", "/api/adapters/out-skill/.v2.partial"), 400)
  local out, seen = train("v2", nil, {resume = true})
  T.eq(seen[1].ev.resumed_from_step, 4)  -- the checkpoints were back in place
  T.eq(seen[#seen].out, with_output("checkpoints"))
  T.eq(entries(root), {"v1", "v2"})
  -- Killed once the new output was in place, before the checkpoints moved into it: finished.
  sh(("mkdir %q && mv %q %q && echo '{\"old\":1}' > %q"):format(root .. "/.v2.replaced",
     out .. "/checkpoints", root .. "/.v2.replaced/", root .. "/.v2.replaced/summary.json"))
  local _, seen2 = train("v2", nil, {resume = true})
  T.eq(seen2[1].ev.resumed_from_step, 4)
  T.eq(seen2[#seen2].out, with_output("checkpoints"))
  T.eq(fb.json.decode(fb.fs.read(out .. "/summary.json")).old, nil)
  T.eq(entries(root), {"v1", "v2"})
end)

T.test("clean up", function() server.stop(app) end)

T.run()
