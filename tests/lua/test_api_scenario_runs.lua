-- Scenario runs over real HTTP with real model processes on the bundled model: a scenario the
-- base fails and a trained adapter passes on its hard checks, with verdicts that say why; a
-- rubric the judge scores 4-5 passes, one it cannot score stays "unjudged" (not a pass), each
-- verdict with its provider and prompt version (the providers are local stand-ins); the adapter's row carries its result and a version
-- that passes fewer than the one before is flagged; runs queue and cancel; a run a stopped
-- server left half done goes on where it stopped; a finished training job's adapter is run, and
-- one of its checkpoints can be.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local server = require "tests.api.server"
local scenario_runs = require "fastbrain.scenario_runs"
local standin = require "tests.lua.standin"

local app = server.start()
local MODEL = fb.root .. "/share/models/tiny"
local PHONE = "555-0100"
local RUNS = "/api/skills/desk/scenario-runs"
local auto  -- the last training job's {job, run}: its adapter's run

local function wait_run(skill, id)
  local run
  server.wait_until(function()
    local _, body = server.call(app, "GET", ("/api/skills/%s/scenario-runs/%s"):format(skill, id))
    run = body.run
    return run.state ~= "queued" and run.state ~= "running"
  end, "run " .. id, 60000)
  return run
end

local function by_scenario(run)
  local t = {}
  for _, r in ipairs(run.results) do t[r.scenario] = r end
  return t
end

T.test("the base fails what a trained adapter passes; a rubric alone is unjudged", function()
  T.eq(server.call(app, "POST", "/api/skills", {id = "desk", name = "Desk", system = "Answer briefly."}), 201)
  local scenarios = {
    {id = "phone", messages = {{role = "user", content = "How do I reach you?"}}, checks = {must_include = {PHONE}}},
    {id = "short", messages = {{role = "user", content = "Hello"}}, checks = {max_words = 1000}},
    {id = "kind", messages = {{role = "user", content = "Thanks!"}}, rubric = "is friendly"},
  }
  T.eq(server.call(app, "PUT", "/api/skills/desk/scenarios", scenarios), 200)
  local data = app.data_dir .. "/desk.jsonl"
  local lines = {}
  for i, q in ipairs({"How do I reach you?", "Phone?", "Call you?", "Number please", "Contact?", "How to call?"}) do
    lines[i] = fb.json.encode({messages = {{role = "user", content = q},
                                           {role = "assistant", content = "Call us at " .. PHONE .. "."}}})
  end
  assert(fb.fs.write_atomic(data, table.concat(lines, "\n") .. "\n"))
  assert(fb.train.run({model = MODEL, data = data, out = app.data_dir .. "/adapters/desk/v1", max_steps = 60,
                       lr = 0.005, eval = {fraction = 0}, max_len = 64}))
  local status, base = server.call(app, "POST", RUNS, {target = "base"})
  T.eq({status, base.run.state}, {202, "queued"})
  local _, tuned = server.call(app, "POST", RUNS, {version = "v1"})
  base, tuned = wait_run("desk", base.run.id), wait_run("desk", tuned.run.id)
  T.eq({base.state, base.total, base.answered}, {"succeeded", 3, 3})
  local b, t = by_scenario(base), by_scenario(tuned)
  T.eq({b.phone.status, b.phone.checks[1].detail}, {"fail", "missing '" .. PHONE .. "'"})
  T.eq({t.phone.status, t.phone.checks[1].detail}, {"pass", "has all"})
  assert(t.phone.answer:find(PHONE, 1, true), t.phone.answer)
  T.eq({b.short.status, t.kind.status}, {"pass", "unjudged"})
  assert(t.phone.latency_ms > 0 and t.phone.tokens > 0)
  T.eq({base.passed, tuned.passed}, {1, 2})
  local _, list = server.call(app, "GET", RUNS)
  T.eq({#list.runs, list.runs[1].id, list.runs[1].results}, {2, tuned.id, nil})
  local _, adapters = server.call(app, "GET", "/api/adapters")
  T.eq(adapters.adapters[1].scenarios, {run = tuned.id, passed = 2, total = 3, finished_at = tuned.finished_at})
end)

T.test("a version that passes fewer scenarios than the one before is flagged", function()
  local root = app.data_dir .. "/adapters/desk/"
  for version, passed in pairs({v2 = 1, v3 = 3}) do
    assert(fb.fs.mkdir_p(root .. version))
    assert(fb.fs.write_atomic(root .. version .. "/summary.json", fb.fs.read(root .. "v1/summary.json")))
    assert(fb.fs.write_atomic(root .. version .. "/scenarios.json",
                              fb.json.encode({run = "r", passed = passed, total = 3})))
  end
  local _, body = server.call(app, "GET", "/api/adapters")
  local rows = {}
  for _, r in ipairs(body.adapters) do rows[r.version] = r end
  T.eq(rows.v2.regressed_from, {version = "v1", passed = 2, total = 3})
  T.eq({rows.v1.regressed_from, rows.v3.regressed_from}, {nil, nil})
end)

T.test("runs queue; a queued or running run cancels, an ended one does not", function()
  local _, a = server.call(app, "POST", RUNS, {version = "v1"})
  local _, b = server.call(app, "POST", RUNS, {version = "v1"})
  local status, cancelled = server.call(app, "POST", RUNS .. "/" .. b.run.id .. "/cancel")
  T.eq({status, cancelled.run.state}, {200, "cancelled"})
  T.eq(wait_run("desk", a.run.id).state, "succeeded")
  T.eq(wait_run("desk", b.run.id).answered, 0)
  T.eq(server.call(app, "POST", RUNS .. "/" .. b.run.id .. "/cancel"), 409)
  T.eq(server.call(app, "POST", RUNS .. "/nope/cancel"), 404)
  T.eq(server.call(app, "POST", RUNS, {version = "../../etc"}), 400)
  T.eq(server.call(app, "POST", RUNS, {version = "v9"}), 404)
  T.eq(server.call(app, "POST", "/api/skills/nobody/scenario-runs", {target = "base"}), 404)
end)

T.test("a run a stopped server left half done goes on where it stopped", function()
  local _, done = server.call(app, "GET", RUNS)
  local finished = wait_run("desk", done.runs[#done.runs].id)
  local half = {}
  for k, v in pairs(finished) do half[k] = v end
  half.id, half.state, half.finished_at = "20260101-000000-1", "running", nil
  half.results = {finished.results[1]}
  half.results[1].answer = "kept from before the restart"
  half.answered, half.passed = 1, 0
  assert(fb.fs.write_atomic(app.data_dir .. "/skills/desk/scenario-runs/" .. half.id .. ".json", fb.json.encode(half)))
  local runs = scenario_runs.new{data_dir = app.data_dir, pool = app.pool, model = MODEL}
  runs:resume_saved()
  server.wait_until(function() return runs:get("desk", half.id).state == "succeeded" end, "the resumed run", 60000)
  local run = runs:get("desk", half.id)
  T.eq({run.answered, run.total, run.results[1].answer}, {3, 3, "kept from before the restart"})
  T.eq({run.results[2].scenario, run.results[3].scenario}, {"short", "kind"})
end)

T.test("the judge scores the rubrics: 4-5 passes; an unusable reply leaves it unjudged", function()
  local srv = standin.start()
  local chain = srv:chain({"groq"})
  local runs = scenario_runs.new{data_dir = app.data_dir, pool = app.pool, model = MODEL, chain = chain}
  local function finished(run)
    server.wait_until(function() return runs:get("desk", run.id).state == "succeeded" end, "the judged run", 60000)
    return by_scenario(runs:get("desk", run.id)), runs:get("desk", run.id)
  end
  srv:queue("openai", standin.openai_ok('{"score": 5, "reason": "Warm and brief."}'))
  local results, run = finished(assert(runs:start("desk", {kind = "adapter", version = "v1"})))
  T.eq(results.kind.status, "pass")
  T.eq(results.kind.judge, {score = 5, reason = "Warm and brief.", pass = true, provider = "groq",
                            model = "llama-3.1-8b-instant", prompt_version = "v1"})
  T.eq({run.passed, run.settings.judge, #srv.requests.openai}, {3, true, 1})  -- only the rubric is judged
  srv:queue("openai", standin.openai_ok("It is fine."), standin.openai_ok("Still fine."))
  results, run = finished(assert(runs:start("desk", {kind = "adapter", version = "v1"})))
  T.eq(results.kind.status, "unjudged")
  T.matches(results.kind.judge.error, "not usable")
  T.eq(run.passed, 2)
  local off = assert(runs:start("desk", {kind = "adapter", version = "v1"}, {judge = false}))
  results = finished(off)
  T.eq({results.kind.status, results.kind.judge, #srv.requests.openai}, {"unjudged", nil, 3})
  srv:close()
end)

T.test("a finished training job's adapter is run on the skill's scenarios", function()
  server.fast_skill(app, "auto")
  T.eq(server.call(app, "PUT", "/api/skills/auto/scenarios",
                   {{id = "hi", messages = {{role = "user", content = "hi"}}, checks = {max_words = 1000}}}), 200)
  T.eq(server.call(app, "POST", "/api/train-skill/auto", {max_steps = 2}), 202)
  local job = server.wait_state(app, "auto", "succeeded")
  local version = job.adapter:match("([^/]+)$")
  local run
  server.wait_until(function()
    local _, body = server.call(app, "GET", "/api/skills/auto/scenario-runs")
    run = body.runs[1]
    return run and run.state == "succeeded"
  end, "the run after training", 60000)
  T.eq({run.target.kind, run.target.version, run.passed, run.total}, {"adapter", version, 1, 1})
  auto = {job = job, run = wait_run("auto", run.id)}
end)

T.test("a job's checkpoint is run as the adapter of its step; the run keeps its own copy", function()
  local job = auto.job  -- the training status: job.job is its id
  local _, body = server.call(app, "GET", "/api/skills/auto/checkpoints")
  T.eq(#body.checkpoints, 1)
  T.eq({body.checkpoints[1].job, body.checkpoints[1].step, body.checkpoints[1].job_state}, {job.job, 2, "succeeded"})
  local status, started = server.call(app, "POST", "/api/skills/auto/scenario-runs", {job = job.job, step = 2})
  T.eq(status, 202)
  local run = wait_run("auto", started.run.id)
  T.eq({run.state, run.target.kind, run.target.job, run.target.step}, {"succeeded", "checkpoint", job.job, 2})
  -- The last step's checkpoint holds the published weights: the same adapter, the same answers.
  T.eq(run.adapter, ("%s/skills/auto/scenario-runs/%s.adapter"):format(app.data_dir, run.id))
  T.eq(fb.fs.read(run.adapter .. "/adapter_model.safetensors"), fb.fs.read(job.adapter .. "/adapter_model.safetensors"))
  T.eq(run.results[1].answer, auto.run.results[1].answer)
  local code, err = server.call(app, "POST", "/api/skills/auto/scenario-runs", {job = job.job, step = 1})
  T.eq({code, err.error}, {404, ("job %s has no checkpoint of step 1 (its checkpoints are of step 2)"):format(job.job)})
  code, err = server.call(app, "POST", "/api/skills/desk/scenario-runs", {job = job.job, step = 2})
  T.eq({code, err.error}, {404, ("no job %s of desk"):format(job.job)})
  code, err = server.call(app, "POST", "/api/skills/auto/scenario-runs", {job = job.job})
  T.eq({code, err.error}, {400, "step: a checkpoint's step expected"})
end)

T.test("clean up", function() server.stop(app) end)

T.run()
