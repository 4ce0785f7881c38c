-- The models API over real HTTP against scripts/serve.lua in-process: the base models listed
-- (bundled, the data directory's, the Hugging Face cache's, one the engine cannot run, each
-- with its shape and whether it is supported), a skill's base model set and cleared with PATCH
-- and refused when the server lacks it, a job that trains on it with the adapter naming the
-- repository and its commit, and deletion refused while a skill, a live job or the server's
-- default needs the model; the estimate of a run on each. The caches are $HF_HUB_CACHE and
-- $FASTBRAIN_CACHE (cmake/api.cmake gives this test its own).
local T = require "tests.lua.testing"
local server = require "tests.api.server"
local fb = require "fastbrain"

local CACHE = assert(os.getenv("HF_HUB_CACHE"), "HF_HUB_CACHE names this test's cache")
local COMMIT = "0123456789abcdef0123456789abcdef01234567"

local function sh(cmd) assert(os.execute(cmd), "command failed: " .. cmd) end

-- A cached repository ORG/NAME whose main ref holds files (a copy of the bundled model's, with
-- config edits), as huggingface_hub lays one out but with plain files in the snapshot.
local function cache_repo(repo, config_sed)
  local dir = ("%s/models--%s"):format(CACHE, repo:gsub("/", "--"))
  sh(("mkdir -p '%s/refs' '%s/snapshots/%s'"):format(dir, dir, COMMIT))
  sh(("cp '%s'/share/models/tiny/* '%s/snapshots/%s/'"):format(fb.root, dir, COMMIT))
  if config_sed then sh(("sed -i '%s' '%s/snapshots/%s/config.json'"):format(config_sed, dir, COMMIT)) end
  assert(fb.fs.write_atomic(dir .. "/refs/main", COMMIT))
  return dir
end

sh(("rm -rf '%s' '%s'"):format(CACHE, os.getenv("FASTBRAIN_CACHE")))
local ACME = cache_repo("acme/tiny-chat")
local OTHER = cache_repo("acme/other")
cache_repo("acme/mamba", 's/"LlamaForCausalLM"/"MambaForCausalLM"/')

local app = server.start()
local function call(...) return server.call(app, ...) end

local function by_id(list)
  local t = {}
  for _, m in ipairs(list) do t[m.id] = m end
  return t
end

T.test("every base model is listed with its shape, its source and whether it runs", function()
  local status, body = call("GET", "/api/models")
  T.eq(status, 200)
  T.eq(body.default, "tiny")
  local m = by_id(body.models)
  T.eq({m.tiny.source, m.tiny.default, m.tiny.supported, m.tiny.architecture},
       {"bundled", true, true, "LlamaForCausalLM"})
  T.eq(m.tiny.parameters > 1e6 and m.tiny.bytes > 1e6 and m.tiny.context >= 1024, true)
  T.eq(m.tiny.dtype ~= nil and m.tiny.template ~= nil, true)
  local acme = m["acme/tiny-chat"]
  T.eq({acme.source, acme.default, acme.revision, acme.supported, acme.parameters},
       {"cache", false, COMMIT, true, m.tiny.parameters})
  local mamba = m["acme/mamba"]
  T.eq({mamba.supported, mamba.architecture}, {false, "MambaForCausalLM"})
  T.matches(mamba.reason, "MambaForCausalLM")
end)

T.test("one model by id; one not there is 404 with how to get it", function()
  local status, body = call("GET", "/api/models/acme/tiny-chat")
  T.eq({status, body.model.id, body.model.skills}, {200, "acme/tiny-chat", {}})
  status, body = call("GET", "/api/models/acme/absent")
  T.eq(status, 404)
  T.matches(body.error, "fastbrain pull acme/absent")
  T.eq((call("GET", "/api/models/tiny")), 200)
end)

T.test("a skill's base model: set with PATCH, refused when absent, cleared with null", function()
  server.fast_skill(app, "chat")
  local status, body = call("PATCH", "/api/skills/chat", {base_model = "acme/absent"})
  T.eq({status, body.error}, {400, "invalid skill"})
  T.matches(body.fields.base_model, "not in the Hugging Face cache")
  T.eq(select(2, call("PATCH", "/api/skills/chat", {base_model = 7})).fields.base_model, "must be a string")
  status, body = call("PATCH", "/api/skills/chat", {base_model = "acme/tiny-chat"})
  T.eq({status, body.skill.base_model, body.skill.name}, {200, "acme/tiny-chat", "chat"})
  T.eq(select(2, call("GET", "/api/models/acme/tiny-chat")).model.skills, {"chat"})
  T.eq(select(2, call("GET", "/api/models/tiny")).model.skills[1] ~= "chat", true)
  status, body = call("PATCH", "/api/skills/chat", {base_model = fb.json.null})
  T.eq({status, body.skill.base_model}, {200, nil})
  T.eq((call("PATCH", "/api/skills/chat", {base_model = "acme/tiny-chat"})), 200)
end)

T.test("a skill trains on its base model; the adapter names the repository and commit", function()
  local status, body = call("POST", "/api/train-skill/chat")
  T.eq(status, 202)
  T.eq(body.job.spec.model, "acme/tiny-chat")
  local st = server.wait_state(app, "chat", "succeeded", "failed")
  T.eq(st.state, "succeeded", st.error)
  local summary = fb.json.decode(assert(fb.fs.read(st.adapter .. "/summary.json")))
  T.eq({summary.base_model, summary.base_model_revision}, {"acme/tiny-chat", COMMIT})
  local _, list = call("GET", "/api/adapters")
  local seen = {}
  for _, a in ipairs(list.adapters) do
    if a.skill == "chat" then seen[#seen + 1] = a.base_model end
  end
  T.eq(seen, {"acme/tiny-chat"})
end)

T.test("the cost of a run before it starts, on the skill's base model or another", function()
  -- The first estimate measures the model's shape: seconds, more on a busy machine.
  local status, body = call("GET", "/api/training/estimate/chat", nil, nil, 180000)
  T.eq(status, 200, body.error)
  local e = body.estimate
  T.eq(e.model, "acme/tiny-chat")
  T.eq({e.examples + e.eval_examples, e.cpu.fits, e.cpu.calibration.cached}, {16, true, false})
  T.eq(e.steps > 0 and e.tokens_per_epoch > 0 and e.cpu.seconds > 0 and e.cpu.peak_bytes > 0, true)
  status, body = call("GET", "/api/training/estimate/chat?model=tiny")
  T.eq({status, body.estimate.model, body.estimate.cpu.calibration.cached}, {200, "tiny", true})
  T.eq(body.estimate.steps, e.steps)
  -- The form's fields, as a start would send them.
  status, body = call("POST", "/api/training/estimate/chat", {epochs = 9, max_steps = 0})
  T.eq({status, body.estimate.epochs}, {200, 9})
  T.eq(body.estimate.steps > e.steps, true)
  status, body = call("POST", "/api/training/estimate/chat", {epochs = "x"})
  T.eq({status, body.error}, {400, "invalid training spec"})
  status, body = call("GET", "/api/training/estimate/chat?model=acme/absent")
  T.eq(status, 404)
  T.matches(body.error, "fastbrain pull acme/absent")
  T.eq((call("GET", "/api/training/estimate/chat?model=acme/mamba")), 422)
  assert(call("POST", "/api/skills", {id = "empty", name = "Empty"}) == 201)
  status, body = call("GET", "/api/training/estimate/empty")
  T.eq(status, 422)
  T.eq(body.error, "the skill has no examples yet")
end)

T.test("deleting a model: refused for the default, a skill's, a live job's; then gone", function()
  local status, body = call("DELETE", "/api/models/tiny")
  T.eq(status, 409)
  T.matches(body.error, "default")
  status, body = call("DELETE", "/api/models/acme/tiny-chat")
  T.eq(status, 409)
  T.matches(body.error, "base model of chat")
  -- A job trains on acme/other while its skill no longer names it.
  server.fast_skill(app, "long")
  T.eq((call("PATCH", "/api/skills/long", {base_model = "acme/other"})), 200)
  T.eq((call("POST", "/api/train-skill/long", {max_steps = 100000})), 202)
  T.eq((call("PATCH", "/api/skills/long", {base_model = fb.json.null})), 200)
  status, body = call("DELETE", "/api/models/acme/other")
  T.eq(status, 409)
  T.matches(body.error, "trains on acme/other")
  T.eq((call("POST", "/api/training/cancel/long")), 202)
  server.wait_state(app, "long", "cancelled")
  T.eq((call("DELETE", "/api/models/acme/other")), 200)
  T.eq(fb.fs.mode(OTHER), nil)
  T.eq((call("GET", "/api/models/acme/other")), 404)
end)

T.test("a skill whose base model was deleted cannot train until it picks another", function()
  T.eq((call("PATCH", "/api/skills/long", {base_model = "acme/tiny-chat"})), 200)
  -- Gone behind the server's back (another tool cleaned the cache).
  sh(("rm -rf '%s'"):format(ACME))
  local status, body = call("POST", "/api/train-skill/long")
  T.eq(status, 409)
  T.matches(body.error, "base model is gone")
  T.eq((call("GET", "/api/training/defaults/long")), 409)
  status = call("PATCH", "/api/skills/long", {base_model = "tiny"})
  T.eq(status, 200)
  T.eq((call("GET", "/api/training/defaults/long")), 200)
end)

T.test("teardown", function()
  server.stop(app)
  sh(("rm -rf '%s'"):format(CACHE))
end)

T.run()
