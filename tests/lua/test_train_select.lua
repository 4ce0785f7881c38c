-- spec.select = "scenarios" on a tiny random model made by fb_make_tiny_model (arg[1]): the
-- training data teaches the adapter to start every answer with "zebra", a scenario forbids the
-- word, so its answers pass before the adapter has learned it and fail after; the published
-- adapter is the checkpoint that passed, not the last, a resumed run picks the same one, and a
-- spec without a scenario with hard checks is refused naming the field.
local T = require "tests.lua.testing"
local fb = require "fastbrain"

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute(string.format("%q %q", arg[1], tmp .. "/model")), "fb_make_tiny_model failed")
local data = tmp .. "/data.jsonl"
local words = {"red", "blue", "green", "gold", "gray", "pink", "teal", "navy", "rose", "jade"}
local f = assert(io.open(data, "w"))
for i = 0, 19 do
  f:write(fb.json.encode({messages = {{role = "user", content = "item " .. i},
    {role = "assistant", content = "zebra " .. words[i % 10 + 1]}}}), "\n")
end
f:close()

local SCENARIO = {id = "no-zebra", messages = {{role = "user", content = "item 3"}},
                  checks = {must_not_include = {"zebra"}}}
local TOKENS = 12

local function spec(out, extra)
  local s = {model = tmp .. "/model", data = data, out = tmp .. "/" .. out, max_steps = 40, lr = 0.01,
             eval = {fraction = 0.1, interval = 4}, select = "scenarios", select_max_tokens = TOKENS,
             scenarios = {SCENARIO, {id = "judged", messages = SCENARIO.messages, rubric = "Kind."}}}
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function read(path) return assert(fb.fs.read(path)) end

local whole, answers = nil, {}

T.test("the published adapter is the checkpoint that passes, not the last", function()
  local events = 0
  whole = assert(fb.train.run(spec("a"), {on_scenarios = function(ev)
    events = events + 1
    T.eq(ev.total, 1)  -- the scenario with a rubric alone is left out
    T.eq(ev.answers[1].id, "no-zebra")
    T.eq(ev.passed, ev.answers[1].pass and 1 or 0)
    T.eq(ev.answers[1].checks[1].check, "must_not_include")
    answers[ev.step] = ev.answers[1].text
  end}))
  T.eq(events, 10)
  T.eq(whole.select, "scenarios")
  T.eq(whole.scenario_total, 1)
  T.eq(whole.selected_passed, 1)
  T.eq(whole.kept_best, true)
  assert(whole.selected_step < whole.steps, "selected the last step")
  local last = whole.scenario_history[#whole.scenario_history]
  T.eq({last.step, last.passed}, {40, 0})  -- the last step's answer says "zebra"
  T.matches(answers[40], "zebra")
  for _, h in ipairs(whole.scenario_history) do
    if h.step == whole.selected_step then T.eq(h.passed, 1) end
  end
  -- The published adapter answers as the selected step did, and passes.
  local m = assert(fb.model.load(tmp .. "/model", {device = "cpu"}))
  local text = assert(m:generate("item 3", {adapter = tmp .. "/a", max_tokens = TOKENS, repetition_penalty = 1.2}))
  m:close()
  T.eq(text, answers[whole.selected_step])
  local _, passed = require("fastbrain.scenarios").verdicts(text, SCENARIO.checks)
  T.eq(passed, true)
end)

T.test("a run resumed in the middle selects the same step and weights", function()
  local ok, err = pcall(fb.train.run, spec("r"), {on_progress = function(ev)
    if ev.step == 10 then error("interrupted") end
  end})
  T.eq(ok, false)
  T.matches(err, "the run stopped with a checkpoint")
  local resumed = assert(fb.train.run(spec("r"), nil, {resume = true}))
  T.eq(resumed.selected_step, whole.selected_step)
  T.eq(resumed.scenario_history, whole.scenario_history)
  T.eq(read(tmp .. "/r/adapter_model.safetensors") == read(tmp .. "/a/adapter_model.safetensors"), true)
end)

T.test("select scenarios without a scenario with hard checks is refused naming the field", function()
  local judged_only = {{id = "judged", messages = SCENARIO.messages, rubric = "Kind."}}
  for _, list in ipairs({judged_only, {}}) do
    local summary, err, where = fb.train.run(spec("n", {scenarios = list}))
    T.eq(summary, nil)
    T.matches(err, '^spec%.scenarios: select "scenarios" needs at least one scenario with hard checks')
    T.eq(where, "spec.scenarios")
  end
  local missing = spec("n")
  missing.scenarios = nil
  local _, err, where = fb.train.run(missing)
  T.matches(err, "^spec%.scenarios: a list of scenarios")
  T.eq(where, "spec.scenarios")
  _, err = fb.train.run(spec("n", {scenarios = {{id = "x", messages = {}, checks = {max_words = 3}}}}))
  T.matches(err, "^spec%.scenarios%[1%]: messages: a non%-empty list")
  T.eq(fb.fs.mode(tmp .. "/n"), nil)
end)

T.test("scenarios are asked after the skill's system prompt unless they bring their own", function()
  local own = {id = "own", messages = {{role = "system", content = "Be terse."}, SCENARIO.messages[1]},
               checks = {max_words = 3}}
  local d = assert(fb.train.prepare(spec("p", {samples = {system = "Answer in colours."},
                                               scenarios = {SCENARIO, own}})))
  local tok = assert(require("fastbrain.tokenizer").load(tmp .. "/model"))
  T.eq({d.scenarios[1].text, d.scenarios[2].text}, {"no-zebra", "own"})
  T.matches(tok:decode(d.scenarios[1].ids), "Answer in colours%..*item 3")
  local text = tok:decode(d.scenarios[2].ids)
  T.matches(text, "Be terse%..*item 3")
  T.eq(text:find("colours", 1, true), nil)
end)

T.test("cleanup", function() os.execute(string.format("rm -rf %q", tmp)) end)

T.run()
