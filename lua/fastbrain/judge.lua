-- fastbrain.judge: an LLM's score of one answer against a scenario's rubric, through the
-- provider chain (fastbrain.fallback: Groq, then Anthropic, then the local model). The prompt
-- is one versioned file, share/judge/<VERSION>.txt; every verdict records it with the provider
-- and model that gave it. A reply that is not the JSON asked for is asked again, TRIES times in
-- all, then the scenario is "unjudged" (not a pass).
--   judge(chain, {skill =, scenario =, answer =}) -> {score, reason, pass, provider, model,
--     prompt_version} | nil, {message, provider, model, prompt_version}
-- In a coroutine: the chain yields on the network.
local fb = require "fastbrain"

local M = {VERSION = "v1", TRIES = 2, PASS_SCORE = 4}

local prompt_template

local function template()
  if not prompt_template then
    local path = ("%s/share/judge/%s.txt"):format(fb.root, M.VERSION)
    prompt_template = assert(fb.fs.read(path))
  end
  return prompt_template
end

local function transcript(messages)
  local lines = {}
  for _, m in ipairs(messages) do
    if m.role ~= "system" then lines[#lines + 1] = ("%s: %s"):format(m.role, m.content) end
  end
  return table.concat(lines, "\n")
end

-- The judge's prompt for an answer.
function M.prompt(skill, scenario, answer)
  local fields = {skill = (skill.name or skill.id or "?") .. (skill.description and (": " .. skill.description) or ""),
                  system = skill.system or "(none)", conversation = transcript(scenario.messages),
                  answer = answer, rubric = scenario.rubric}
  return (template():gsub("{{(%w+)}}", function(k) return fields[k] end))
end

-- {"score": n, "reason": "..."} somewhere in text (a code fence or a sentence around it is
-- forgiven) -> score, reason | nil, why
function M.parse(text)
  for candidate in (text or ""):gmatch("%b{}") do
    local v = fb.json.decode(candidate)
    if type(v) == "table" then
      local score = math.tointeger(v.score)
      if not (score and score >= 1 and score <= 5) then return nil, "score is not an integer 1-5" end
      if type(v.reason) ~= "string" or not v.reason:find("%S") then return nil, "no reason" end
      return score, v.reason
    end
  end
  return nil, "no JSON object"
end

function M.judge(chain, t)
  local req = {messages = {{role = "user", content = M.prompt(t.skill, t.scenario, t.answer)}},
               max_tokens = 200, temperature = 0}
  local last
  for _ = 1, M.TRIES do
    local res, err = chain:request(req)
    if not res then
      return nil, {message = err.message, prompt_version = M.VERSION}
    end
    local score, reason = M.parse(res.text)
    if score then
      return {score = score, reason = reason, pass = score >= M.PASS_SCORE, provider = res.provider,
              model = res.model or fb.json.null, prompt_version = M.VERSION}
    end
    last = {message = ("the judge's reply was not usable (%s): %s"):format(reason, (res.text or ""):sub(1, 120)),
            provider = res.provider, model = res.model or fb.json.null, prompt_version = M.VERSION}
  end
  return nil, last
end

return M
