-- The bundled skills' hand-written scenarios.jsonl (issue 17): each parses without problems, has
-- 12 to 16 kebab-case scenarios with a rubric, asks nothing its training data already asks, and
-- its hard checks are proved on tests/scenarios/<skill>.answers.jsonl: every scenario's checks
-- pass an excellent employee's answer and fail a plausible bad one.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local fs = require "fastbrain.fs"
local scenarios = require "fastbrain.scenarios"

local MIN, MAX, MAX_RUBRIC_ONLY = 12, 16, 2

local function read(path) return assert(fs.read(path)) end

local function jsonl(path)
  local out = {}
  for line in read(path):gmatch("[^\n]+") do
    if line:find("%S") then out[#out + 1] = assert(fb.json.decode(line)) end
  end
  return out
end

-- The user turns of the skill's training data, lowered and with spaces squeezed.
local function normal(s) return (s:lower():gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")) end
local function trained_prompts(dir)
  local seen = {}
  for _, ex in ipairs(jsonl(dir .. "/data.jsonl")) do
    for _, m in ipairs(ex.messages) do
      if m.role == "user" then seen[normal(m.content)] = true end
    end
  end
  return seen
end

local function show(verdicts)
  local parts = {}
  for _, v in ipairs(verdicts) do
    parts[#parts + 1] = ("%s %s (%s)"):format(v.check, v.pass and "passes" or "fails", v.detail)
  end
  return table.concat(parts, "; ")
end

local skills = {}
for _, name in ipairs(assert(fs.list(fb.root .. "/share/skills"))) do
  if fs.stat(fb.root .. "/share/skills/" .. name .. "/skill.json") then skills[#skills + 1] = name end
end

T.test("every bundled skill ships a scenario set", function()
  T.eq(#skills >= 3, true, "bundled skills found")
end)

for _, skill in ipairs(skills) do
  local dir = fb.root .. "/share/skills/" .. skill

  T.test(skill .. ": scenarios.jsonl parses, 12..16 kebab-case scenarios with rubrics, none copied", function()
    local list, problems = scenarios.parse(read(dir .. "/scenarios.jsonl"))
    T.eq(problems, nil, "problems")
    T.eq(#list >= MIN and #list <= MAX, true, ("%d scenarios"):format(#list))
    local trained, rubric_only = trained_prompts(dir), 0
    for _, s in ipairs(list) do
      T.matches(s.id, "^[a-z0-9]+%-[a-z0-9%-]*[a-z0-9]$", "id")
      T.eq(s.id:find("%-%-"), nil, s.id .. ": id")
      T.eq(type(s.rubric) == "string" and #s.rubric > 20, true, s.id .. ": rubric")
      if not (s.checks and next(s.checks)) then rubric_only = rubric_only + 1 end
      for _, m in ipairs(s.messages) do
        T.eq(m.role ~= "system", true, s.id .. ": the skill's own system prompt is added by the runner")
        if m.role == "user" then T.eq(trained[normal(m.content)], nil, s.id .. ": a training prompt") end
      end
    end
    T.eq(rubric_only <= MAX_RUBRIC_ONLY, true, ("%d scenarios with only a rubric"):format(rubric_only))
  end)

  T.test(skill .. ": hard checks pass the good answer and fail the bad one", function()
    local list = assert(scenarios.parse(read(dir .. "/scenarios.jsonl")))
    local answers = {}
    for _, a in ipairs(jsonl(fb.root .. "/tests/scenarios/" .. skill .. ".answers.jsonl")) do
      T.eq(answers[a.id], nil, a.id .. ": answered twice")
      T.eq(type(a.good) == "string" and type(a.bad) == "string", true, a.id .. ": good and bad")
      answers[a.id] = a
    end
    local wrong = {}
    for _, s in ipairs(list) do
      local a = answers[s.id]
      T.eq(a ~= nil, true, s.id .. ": an answer pair")
      answers[s.id] = nil
      if s.checks and next(s.checks) then
        local good, good_passed = scenarios.verdicts(a.good, s.checks)
        local bad, bad_passed = scenarios.verdicts(a.bad, s.checks)
        if not good_passed then wrong[#wrong + 1] = s.id .. ": good answer fails: " .. show(good) end
        if bad_passed then wrong[#wrong + 1] = s.id .. ": bad answer passes: " .. show(bad) end
      end
    end
    T.eq(next(answers), nil, "answers for no scenario")
    T.eq(wrong, {})
  end)
end

T.run()
