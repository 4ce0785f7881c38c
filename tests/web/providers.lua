-- The remote LLM APIs for the dashboard's browser test: tests/lua/standin.lua in a process of
-- its own, set up so the chain falls back. Groq (OpenAI wire format) is rate limited: 429 with
-- retry-after, as Groq sends it. Anthropic answers each request, after DELAY_MS, with the
-- examples it asks for (the request's "Write N new"), preceded by one exact duplicate of the
-- skill's data (DUPLICATE, a user turn already there) and one example with an empty answer,
-- so the dashboard has drops with reasons to show. Every Anthropic request after the first
-- waits until the file GATE exists, so the test sees a task mid-way for as long as it needs.
-- Anthropic also drafts test scenarios when asked (fastbrain.suggest): one that repeats
-- DUPLICATE's question and one without checks or rubric, which the server drops, then the
-- drafts asked for; and judges answers (fastbrain.judge): 5 when the answer gives the phone
-- number PHONE, else 2. A request without the key from the environment is refused with each
-- API's 401. Prints "stand-ins on http://127.0.0.1:PORT".
-- Usage: fastbrain run tests/web/providers.lua DUPLICATE GATE [DELAY_MS]
local standin = require "tests.lua.standin"
local json = require("fastbrain").json

local fb = require "fastbrain"
local duplicate, gate = arg[1], arg[2]
assert(duplicate and gate, "usage: providers.lua DUPLICATE GATE [DELAY_MS]")
local delay = math.tointeger(tonumber(arg[3] or "")) or 600
local RETRY_AFTER_S = 120

-- Questions different enough from each other that none is a near duplicate of another.
local QUESTIONS = {
  "Do you install water softeners?", "What does a drain camera inspection cost?",
  "Can someone check my sump pump before the storm?", "Why do my pipes bang when the washer stops?",
  "How long does flushing a water heater take?", "Do you replace garbage disposals?",
  "My basement floor drain smells of sewage.", "Could you quote a whole-house repipe?",
  "The pressure in my shower dropped overnight.", "Is there a senior discount?",
  "Is there an extra fee for Saturday visits?", "Can a radiator be moved to another wall?",
}
local asked = 0
local PHONE = "555-0100"
local SUGGESTED = {
  {"weekend-hours", "Are you open on Saturday mornings?", {must_include_any = {"saturday", "weekend"}}},
  {"quote-by-phone", "Can you give me a price for a new boiler over the phone?", {max_words = 80}},
  {"angry-caller", "Your plumber never showed up yesterday!", {must_not_include = {"not our fault"}}},
  {"out-of-scope", "Can you fix my car's radiator?", {ends_with_question = false}},
}

-- The reply to fastbrain.suggest's request for n drafts.
local function drafts(n)
  local function draft(id, q, checks)
    return json.encode({id = id, messages = {{role = "user", content = q}}, checks = checks,
                        rubric = "Polite, brief, and offers a next step."})
  end
  local lines = {draft("repeat", duplicate, {max_words = 50}), json.encode({id = "bare", messages = {{role = "user", content = "Hi?"}}})}
  for i = 1, n do
    local d = SUGGESTED[(i - 1) % #SUGGESTED + 1]
    lines[#lines + 1] = draft(d[1], d[2], d[3])
  end
  return table.concat(lines, "\n")
end

-- The judge's verdict on the answer quoted in its prompt.
local function verdict(prompt)
  local answer = prompt:match("<<<\n(.-)\n>>>") or ""
  if answer:find(PHONE, 1, true) then return '{"score": 5, "reason": "Gives the number to call."}' end
  return '{"score": 2, "reason": "Never gives a number to call."}'
end

local function example(user, answer)
  return json.encode({messages = {{role = "user", content = user}, {role = "assistant", content = answer}}})
end

local srv = standin.start()

srv:respond("openai", function(req)
  if req.headers.authorization ~= "Bearer " .. (os.getenv("GROQ_API_KEY") or "") then
    return standin.openai_error(401, "invalid_request_error", "invalid_api_key", "Invalid API Key")
  end
  return standin.openai_error(429, "tokens", "rate_limit_exceeded",
    ("Rate limit reached for model `llama-3.1-8b-instant`: tokens per day. Please try again in %ds."):format(RETRY_AFTER_S),
    {["retry-after"] = tostring(RETRY_AFTER_S), ["x-ratelimit-remaining-tokens"] = "0",
     ["x-ratelimit-reset-tokens"] = RETRY_AFTER_S .. "s"})
end)

srv:respond("anthropic", function(req)
  if req.headers["x-api-key"] ~= os.getenv("ANTHROPIC_API_KEY") then
    return standin.anthropic_error(401, "authentication_error", "invalid x-api-key")
  end
  local body = req:json()
  local ask = body.messages[#body.messages].content
  local reply = (body.system or ""):find("test scenarios", 1, true) and drafts(tonumber(ask:match("Write (%d+) new")) or 1)
    or ask:find("^You judge one answer") and verdict(ask)
  if reply then
    local answer = standin.anthropic_ok(reply)
    answer.delay = delay
    return answer
  end
  if asked > 0 then
    while not fb.fs.mode(gate) do fb.sleep(20) end
  end
  local want = tonumber(body.messages[#body.messages].content:match("Write (%d+) new")) or 1
  local lines = {example(duplicate, "Same question again."), example("Can you come today?", " ")}
  for _ = 1, want do
    asked = asked + 1
    lines[#lines + 1] = example(QUESTIONS[(asked - 1) % #QUESTIONS + 1],
                                ("Yes, we can help with that; the first free slot is number %d."):format(asked))
  end
  local answer = standin.anthropic_ok(table.concat(lines, "\n"))
  answer.delay = delay
  return answer
end)

print("stand-ins on " .. srv.base)
io.stdout:flush()
