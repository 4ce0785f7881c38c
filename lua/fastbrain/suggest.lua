-- fastbrain.suggest: drafts of test scenarios for a skill, written by the provider chain from
-- the skill's description, system prompt and a few of its examples, for a person to keep, edit
-- or drop. Each draft is checked as a scenario (fastbrain.scenarios.check_one); one that is not
-- one, repeats a kept scenario's id (renamed) or question (dropped), or copies a training
-- question (dropped) does not come back as written.
--   suggest{chain =, skill =, examples = {{messages}...}, existing = scenarios, count =}
--     -> {drafts, dropped = {reason = n}, provider, fallbacks} | nil, err
-- In a coroutine: the chain yields on the network.
local fb = require "fastbrain"
local gendata = require "fastbrain.gendata"
local scenarios = require "fastbrain.scenarios"

local M = {MAX_COUNT = 20}

local FORMAT = '{"id": "kebab-case-id", "messages": [{"role": "user", "content": "..."}], '
  .. '"checks": {"must_include_any": ["..."], "must_not_include": ["..."], "max_words": 120, '
  .. '"ends_with_question": true}, "rubric": "what a good answer does, in one or two sentences"}'

function M.build_request(skill, examples, existing, n)
  local shown, kept = {}, {}
  for i = 1, math.min(3, #examples) do shown[i] = fb.json.encode(examples[i]) end
  for _, s in ipairs(existing) do kept[#kept + 1] = "- " .. s.messages[#s.messages].content end
  return {
    system = "You write test scenarios for an assistant that does a job for a small business: the "
      .. "situations it must handle well, each with checks a good answer passes. Reply with JSON "
      .. "lines only, one scenario per line: " .. FORMAT .. ". Checks are optional and literal "
      .. "(case-insensitive substrings; also \"must_include\": all of them, \"regex\"); prefer "
      .. "several synonyms in must_include_any. Every scenario has a rubric. No commentary.",
    messages = {{role = "user", content = ("Job: %s\nDescription: %s\nThe assistant's instructions: %s\n\n"
      .. "Training examples (do not copy their questions):\n%s\n\nScenarios already kept:\n%s\n\n"
      .. "Write %d new, varied scenarios: emergencies, everyday requests, prices, out-of-scope "
      .. "asks, difficult callers, and a multi-turn one."):format(skill.name or skill.id or "?",
        skill.description or "", skill.system or "", table.concat(shown, "\n"),
        #kept > 0 and table.concat(kept, "\n") or "(none)", n)}},
    max_tokens = 300 * n,
    temperature = 0.7,
  }
end

local function question(s) return s.messages[#s.messages].content:lower():gsub("%s+", " ") end

function M.suggest(opts)
  local count = math.min(opts.count, M.MAX_COUNT)
  local res, err = opts.chain:request(M.build_request(opts.skill, opts.examples, opts.existing, count))
  if not res then return nil, err.message end
  local report = {drafts = fb.json.array(), dropped = {}, provider = res.provider, fallbacks = res.fallbacks}
  local function drop(reason) report.dropped[reason] = (report.dropped[reason] or 0) + 1 end
  local ids, asked = {}, {}
  for _, s in ipairs(opts.existing) do ids[s.id], asked[question(s)] = true, true end
  for _, ex in ipairs(opts.examples) do
    for _, m in ipairs(ex.messages or {}) do
      if m.role == "user" and type(m.content) == "string" then asked[m.content:lower():gsub("%s+", " ")] = true end
    end
  end
  local items, parse_errors = gendata.parse_reply(res.text or "")
  for _ = 1, #parse_errors do drop("not JSON") end
  for _, item in ipairs(items) do
    local s, why = scenarios.check_one(item)
    if not s then drop("not a scenario: " .. why:match("^[^:]+"))
    elseif asked[question(s)] then drop("repeats a question")
    elseif #report.drafts >= count then drop("more than asked")
    else
      local base, n = s.id, 1
      while ids[s.id] do
        n = n + 1
        s.id = ("%s-%d"):format(base:sub(1, 60), n)
      end
      ids[s.id], asked[question(s)] = true, true
      report.drafts[#report.drafts + 1] = s
    end
  end
  return report
end

return M
