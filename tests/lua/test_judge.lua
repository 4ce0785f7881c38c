-- fastbrain.judge against the provider stand-ins (OpenAI/Groq and Anthropic wire formats over
-- real HTTP): a score and reason parsed from a real-format reply, recorded with the provider,
-- model and prompt version; the prompt carries the rubric, the conversation and the answer; a
-- malformed reply is asked again, then the answer is unjudged; a 429 falls back to the next
-- provider.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local standin = require "tests.lua.standin"
local judge = require "fastbrain.judge"

local srv = standin.start()
local chain = srv:chain()

local SKILL = {id = "plumber", name = "Plumbing receptionist", system = "You book plumbing visits."}
local SCENARIO = {id = "leak", messages = {{role = "user", content = "My sink leaks"}},
                  rubric = "Asks for the address and offers a visit."}
local ANSWER = "Sorry to hear that! What is your address? We can come at 2pm."

T.test("parse takes the JSON object wherever it is, and nothing else", function()
  T.eq({judge.parse('{"score": 4, "reason": "good"}')}, {4, "good"})
  T.eq({judge.parse('Here you go:\n```json\n{"score": 2, "reason": "no address"}\n```')}, {2, "no address"})
  T.eq({judge.parse('{"score": 7, "reason": "x"}')}, {nil, "score is not an integer 1-5"})
  T.eq({judge.parse('{"score": 3}')}, {nil, "no reason"})
  T.eq({judge.parse("I'd give it a four.")}, {nil, "no JSON object"})
end)

T.test("a real-format reply is a verdict with its provider, model and prompt version", function(done)
  srv:reset()
  srv:queue("openai", standin.openai_ok('{"score": 5, "reason": "Asks for the address and offers 2pm."}'))
  fb.spawn(T.guard(done, function()
    local v = assert(judge.judge(chain, {skill = SKILL, scenario = SCENARIO, answer = ANSWER}))
    T.eq(v, {score = 5, reason = "Asks for the address and offers 2pm.", pass = true, provider = "groq",
             model = "llama-3.1-8b-instant", prompt_version = "v1"})
    local prompt = srv.requests.openai[1].body.messages[1].content
    for _, want in ipairs({SCENARIO.rubric, ANSWER, "user: My sink leaks", SKILL.system, "Plumbing receptionist"}) do
      assert(prompt:find(want, 1, true), "the prompt lacks " .. want)
    end
    T.eq(srv.requests.openai[1].body.temperature, 0)
    done()
  end))
end)

T.test("a low score is a verdict that does not pass", function(done)
  srv:reset()
  srv:queue("openai", standin.openai_ok('{"score": 2, "reason": "Never asks for the address."}'))
  fb.spawn(T.guard(done, function()
    local v = assert(judge.judge(chain, {skill = SKILL, scenario = SCENARIO, answer = "ok"}))
    T.eq({v.score, v.pass}, {2, false})
    done()
  end))
end)

T.test("a malformed reply is asked again, then the answer is unjudged", function(done)
  srv:reset()
  srv:queue("openai", standin.openai_ok("Looks fine to me."), standin.openai_ok('{"score": "high"}'))
  fb.spawn(T.guard(done, function()
    local v, err = judge.judge(chain, {skill = SKILL, scenario = SCENARIO, answer = ANSWER})
    T.eq(v, nil)
    T.matches(err.message, "not usable %(score is not an integer 1%-5%)")
    T.eq({err.provider, err.prompt_version, #srv.requests.openai}, {"groq", "v1", 2})
    srv:queue("openai", standin.openai_ok("nope"), standin.openai_ok('{"score": 4, "reason": "fine"}'))
    T.eq(assert(judge.judge(chain, {skill = SKILL, scenario = SCENARIO, answer = ANSWER})).score, 4)
    done()
  end))
end)

T.test("a 429 from Groq falls back to Anthropic", function(done)
  srv:reset()
  srv:queue("openai", standin.openai_error(429, "tokens", "rate_limit_exceeded", "Rate limit reached",
                                           {["retry-after"] = "30"}))
  srv:queue("anthropic", standin.anthropic_ok('{"score": 4, "reason": "Offers a visit."}'))
  fb.spawn(T.guard(done, function()
    local v = assert(judge.judge(chain, {skill = SKILL, scenario = SCENARIO, answer = ANSWER}))
    T.eq({v.provider, v.model, v.score}, {"anthropic", "claude-3-5-haiku-20241022", 4})
    done()
  end))
end)

T.test("clean up", function() srv:close() end)

T.run()
