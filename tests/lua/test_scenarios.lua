-- fastbrain.scenarios: scenarios.jsonl parsed line by line with problems naming the line and the
-- field; each hard check passes and fails where it should; fastbrain.regex's \d and case.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local regex = require "fastbrain.regex"
local scenarios = require "fastbrain.scenarios"

local function line(t) return fb.json.encode(t) end
local USER = {{role = "user", content = "My sink is leaking"}}

T.test("a valid file parses; problems name the line and the field", function()
  local good = line{id = "leak", messages = USER, checks = {must_include = {"plumber"}}}
  local list = assert(scenarios.parse(good .. "\n\n" .. line{id = "judged", messages = USER, rubric = "is kind"} .. "\n"))
  T.eq(#list, 2)
  T.eq(list[2].rubric, "is kind")
  local _, problems = scenarios.parse(table.concat({
    good,
    "{not json",
    line{id = "Bad Id", messages = USER, rubric = "x"},
    line{id = "no-checks", messages = USER},
    line{id = "ends-with-answer", messages = {USER[1], {role = "assistant", content = "hi"}}, rubric = "x"},
    line{id = "bad-check", messages = USER, checks = {max_words = 0}},
    line{id = "bad-regex", messages = USER, checks = {regex = "([a-z"}},
    line{id = "unknown-check", messages = USER, checks = {must_rhyme = true}},
    good,
    line{id = "extra", messages = USER, rubric = "x", score = 3},
    line{id = "empty-term", messages = USER, checks = {must_not_include = {"ok", " "}}},
  }, "\n"))
  local want = {
    {2, "not valid JSON"}, {3, "^id:"}, {4, "checks or rubric"}, {5, "last turn must be the user's"},
    {6, "^checks.max_words: an integer >= 1"}, {7, "^checks.regex: not a valid regular expression"},
    {8, "^checks.must_rhyme: unknown"}, {9, 'id: "leak" is also line 1\'s'}, {10, "^score: unknown field"},
    {11, "^checks.must_not_include: %[2%]"},
  }
  T.eq(#problems, #want)
  for i, w in ipairs(want) do
    T.eq(problems[i].line, w[1])
    T.matches(problems[i].message, w[2])
  end
end)

T.test("encode writes what parse reads", function()
  local list = {{id = "a", messages = USER, checks = {max_words = 5}}, {id = "b", messages = USER, rubric = "r"}}
  T.eq(scenarios.parse(scenarios.encode(list)), list)
end)

T.test("each hard check passes and fails where it should, and says why", function()
  local answer = "Sorry to hear that! A PLUMBER can come today at 2pm; the price is $150-$300. What is your address?"
  local function one(checks)
    local v, passed = scenarios.verdicts(answer, checks)
    return passed, v[1].detail
  end
  T.eq({one{must_include = {"plumber", "address"}}}, {true, "has all"})
  T.eq({one{must_include = {"plumber", "phone", "name"}}}, {false, "missing 'phone', 'name'"})
  T.eq({one{must_include_any = {"tomorrow", "today"}}}, {true, "has 'today'"})
  T.eq({one{must_include_any = {"tomorrow", "monday"}}}, {false, "none of 'tomorrow', 'monday'"})
  T.eq({one{must_not_include = {"electrical panel"}}}, {true, "none of them"})
  T.eq({one{must_not_include = {"Price", "panel"}}}, {false, "says 'Price'"})
  T.eq({one{regex = "\\$\\d+ ?- ?\\$\\d+"}}, {true, "matches /\\$\\d+ ?- ?\\$\\d+/"})
  T.eq(one{regex = "\\bfree\\b"}, false)
  T.eq({one{max_words = 30}}, {true, "19 words (at most 30)"})
  T.eq(one{max_words = 10}, false)
  T.eq(one{ends_with_question = true}, true)
  T.eq(one{ends_with_question = false}, false)
  T.eq(select(2, scenarios.verdicts('Shall I book it?")  ', {ends_with_question = true})), true)
  local v, passed = scenarios.verdicts(answer, {max_words = 10, must_include = {"plumber"}})
  T.eq(passed, false)
  T.eq({v[1].check, v[1].pass, v[2].check, v[2].pass}, {"must_include", true, "max_words", false})
end)

T.test("regex: \\d and \\D, case-insensitive on request, bad patterns say why", function()
  T.eq(regex.compile("^\\d{3}-\\D$"):test("123-x"), true)
  T.eq(regex.compile("^\\d{3}$"):test("12a"), false)
  T.eq(regex.compile("plumber"):test("PLUMBER"), false)
  T.eq(regex.compile("plumber", {icase = true}):test("PLUMBER"), true)
  T.eq(regex.compile("\\\\d"):test("\\d"), true)  -- an escaped backslash stays one
  local re, err = regex.compile("(unclosed")
  T.eq(re, nil)
  T.matches(err, "%(")
  T.eq(regex.compile("a\0b"), nil)
end)

T.run()
