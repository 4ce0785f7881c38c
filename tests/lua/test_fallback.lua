-- Providers and the fallback chain against local stand-ins of the OpenAI/Groq and Anthropic
-- APIs: wire formats, rate-limit signals, retries, cool-downs, breaker, budgets across a
-- restart, keys never leaking.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local standin = require "tests.lua.standin"
local common = require "fastbrain.providers.common"
local openai = require "fastbrain.providers.openai"
local anthropic = require "fastbrain.providers.anthropic"
local fallback = require "fastbrain.fallback"
local keys_mod = require "fastbrain.keys"

-- ctest sets canary keys in the environment of the whole suite (tests/canary.sh greps for them).
local CANARY_GROQ = os.getenv("GROQ_API_KEY") or "gsk_canary_5f1e9a7c"
local CANARY_ANTHROPIC = os.getenv("ANTHROPIC_API_KEY") or "sk-ant-canary-77d2b4"
local env = {GROQ_API_KEY = CANARY_GROQ, ANTHROPIC_API_KEY = CANARY_ANTHROPIC}
local keys = keys_mod.new{getenv = function(k) return env[k] end}  -- only these two
local srv = standin.start()
local now = 1764417600  -- 2025-11-29T12:00:00Z; tests move it by hand
local function clock() return now end

local function make_chain(extra)
  local groq = openai.new{name = "groq", base_url = srv.base .. "/openai/v1", model = "llama-3.1-8b-instant",
                          key_env = "GROQ_API_KEY", keys = keys, clock = clock, timeout = 500}
  local claude = anthropic.new{name = "anthropic", base_url = srv.base, model = "claude-3-5-haiku-20241022",
                               key_env = "ANTHROPIC_API_KEY", keys = keys, clock = clock, timeout = 500}
  local opts = {providers = {groq, claude}, clock = clock, backoff_ms = 5, backoff_cap_ms = 40,
                sleep = fb.sleep, random = function() return 1 end}
  for k, v in pairs(extra or {}) do opts[k] = v end
  return fallback.new(opts)
end

local REQ = {system = "You write training examples.", messages = {{role = "user", content = "one example"}},
             max_tokens = 200}

local function async(name, fn)
  T.test(name, function(done)
    srv:reset()
    fb.spawn(T.guard(done, function() fn(); done() end))
  end)
end

T.test("rate-limit time parsers", function()
  T.eq(common.parse_duration("1m30.5s"), 90.5)
  T.eq(common.parse_duration("6s"), 6)
  T.eq(common.parse_duration("250ms"), 0.25)
  T.eq(common.parse_duration("2h0m0s"), 7200)
  T.eq(common.parse_duration("soon"), nil)
  T.eq(common.parse_http_date("Sat, 29 Nov 2025 12:00:30 GMT"), now + 30)
  T.eq(common.parse_rfc3339("2025-11-29T12:01:00Z"), now + 60)
  T.eq(common.parse_rfc3339("2025-11-29T13:01:00+01:00"), now + 60)
  T.eq(common.retry_at({["retry-after"] = "7"}, now), now + 7)
  T.eq(common.retry_at({["retry-after-ms"] = "1500", ["retry-after"] = "7"}, now), now + 1.5)
  T.eq(common.retry_at({["retry-after"] = "Sat, 29 Nov 2025 12:00:30 GMT"}, now), now + 30)
end)

async("openai wire format: Bearer key, system first, usage read", function()
  srv:queue("openai", standin.openai_ok("hello", {prompt_tokens = 11, completion_tokens = 4},
    {["x-ratelimit-remaining-requests"] = "99", ["x-ratelimit-reset-tokens"] = "1m0s"}))
  local chain = make_chain()
  local res = assert(chain:request(REQ))
  T.eq(res.text, "hello")
  T.eq(res.provider, "groq")
  T.eq(res.usage, {input_tokens = 11, output_tokens = 4})
  T.eq(res.limits.requests_remaining, 99)
  T.eq(res.limits.tokens_reset_at, now + 60)
  local sent = srv.requests.openai[1]
  T.eq(sent.headers.authorization, "Bearer " .. CANARY_GROQ)
  T.eq(sent.body.model, "llama-3.1-8b-instant")
  T.eq(sent.body.messages[1], {role = "system", content = REQ.system})
  T.eq(sent.body.messages[2], {role = "user", content = "one example"})
end)

async("anthropic wire format: x-api-key, version, top-level system, content blocks", function()
  srv:queue("openai", standin.openai_error(401, "invalid_request_error", "invalid_api_key", "Invalid API Key"))
  srv:queue("anthropic", standin.anthropic_ok("from claude"))
  local chain = make_chain()
  local res = assert(chain:request(REQ))
  T.eq(res.provider, "anthropic")
  T.eq(res.text, "from claude")
  T.eq(res.fallbacks[1].provider, "groq")
  T.matches(res.fallbacks[1].reason, "^auth: groq: HTTP 401: Invalid API Key")
  local sent = srv.requests.anthropic[1]
  T.eq(sent.headers["x-api-key"], CANARY_ANTHROPIC)
  T.eq(sent.headers["anthropic-version"], "2023-06-01")
  T.eq(sent.body.system, REQ.system)
  T.eq(sent.body.messages, {{role = "user", content = "one example"}})
  -- auth errors are not retried and the provider stays unusable
  T.eq(#srv.requests.openai, 1)
  srv:queue("anthropic", standin.anthropic_ok("again"))
  T.eq(assert(chain:request(REQ)).provider, "anthropic")
  T.eq(#srv.requests.openai, 1)
  T.eq(chain:status()[1].state, "unusable")
end)

async("429 with retry-after falls back, then returns after the reset", function()
  local chain = make_chain()
  srv:queue("openai", standin.openai_error(429, "tokens", "rate_limit_exceeded", "Rate limit reached",
    {["retry-after"] = "30"}))
  srv:queue("anthropic", standin.anthropic_ok("b"))
  local res = assert(chain:request(REQ))
  T.eq(res.provider, "anthropic")
  T.matches(res.fallbacks[1].reason, "^rate_limited")
  -- still cooling down: groq is skipped without a request
  srv:queue("anthropic", standin.anthropic_ok("c"))
  res = assert(chain:request(REQ))
  T.eq(res.provider, "anthropic")
  T.eq(#srv.requests.openai, 1)
  T.matches(res.fallbacks[1].reason, "^cooling down: rate limited")
  now = now + 31
  srv:queue("openai", standin.openai_ok("back"))
  res = assert(chain:request(REQ))
  T.eq(res.provider, "groq")
  T.eq(res.text, "back")
end)

async("each retry-after style and anthropic's reset headers", function()
  local chain = make_chain()
  srv:queue("openai", standin.openai_error(429, "requests", "rate_limit_exceeded", "slow down",
    {["retry-after-ms"] = "2500"}))
  srv:queue("anthropic", standin.anthropic_error(429, "rate_limit_error", "Number of requests exceeded",
    {["retry-after"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", now + 90)}))
  local res, err = chain:request(REQ)
  T.eq(res, nil)
  T.eq(err.next_provider, "groq")
  T.eq(err.next_at, now + 2.5)
  T.matches(err.message, "first back: groq at ")
  now = now + 3
  -- groq answers but says it has no requests left until its reset
  srv:queue("openai", standin.openai_ok("last one", nil, {["x-ratelimit-remaining-requests"] = "0",
    ["x-ratelimit-reset-requests"] = "2m0s"}))
  T.eq(assert(chain:request(REQ)).provider, "groq")
  local status = chain:status()
  T.eq(status[1].state, "cooling down")
  T.eq(status[1].detail, "cooling down: rate limit exhausted")
  now = now + 100  -- anthropic is back, groq is not
  srv:queue("anthropic", standin.anthropic_ok("claude again", nil,
    {["anthropic-ratelimit-requests-remaining"] = "0",
     ["anthropic-ratelimit-requests-reset"] = os.date("!%Y-%m-%dT%H:%M:%SZ", now + 45)}))
  T.eq(assert(chain:request(REQ)).provider, "anthropic")
  local _, err2 = chain:request(REQ)
  T.eq(err2.next_provider, "groq")
  T.eq(chain:status()[2]["until"], os.date("!%Y-%m-%dT%H:%M:%SZ", now + 45))
end)

async("5xx and 529 are retried twice with backoff, then the next provider", function()
  local delays = {}
  local chain = make_chain{sleep = function(ms) delays[#delays + 1] = ms; fb.sleep(ms) end}
  srv:queue("openai", standin.openai_error(500, "server_error", nil, "oops"),
            standin.openai_error(503, "server_error", nil, "unavailable"),
            standin.openai_error(502, "server_error", nil, "bad gateway"))
  srv:queue("anthropic", standin.anthropic_error(529, "overloaded_error", "Overloaded"),
            standin.anthropic_ok("third time"))
  local res = assert(chain:request(REQ))
  T.eq(#srv.requests.openai, 3)  -- one try and two retries
  T.eq(#srv.requests.anthropic, 2)
  T.eq(res.provider, "anthropic")
  T.eq(res.text, "third time")
  T.eq(delays, {5, 10, 5}, "backoff doubles from 5 ms per provider")
end)

async("quota errors are never retried", function()
  local chain = make_chain()
  srv:queue("openai", standin.openai_error(429, "insufficient_quota", "insufficient_quota",
    "You exceeded your current quota, please check your plan and billing details."))
  srv:queue("anthropic", standin.anthropic_error(400, "invalid_request_error",
    "Your credit balance is too low to access the Anthropic API."))
  local res, err = chain:request(REQ)
  T.eq(res, nil)
  T.eq(#srv.requests.openai, 1)
  T.eq(#srv.requests.anthropic, 1)
  T.matches(err.message, "groq %(quota: ")
  T.eq(chain:status()[1].detail, "cooling down: quota or billing limit")
end)

async("timeouts, malformed JSON and truncated bodies count as transient", function()
  local chain = make_chain{retries = 1}
  srv:queue("openai", {status = 200, delay = 800, json = {}},
            {status = 200, raw = "{not json", headers = {["Content-Type"] = "application/json"}})
  srv:queue("anthropic", {status = 200, raw = '{"content": []}'}, standin.anthropic_ok("fine"))
  local res = assert(chain:request(REQ))
  T.eq(res.provider, "anthropic")
  T.matches(res.fallbacks[1].reason, "^malformed: groq: response is not a JSON object")
end)

async("the circuit breaker opens after repeated failures and half-opens later", function()
  local chain = make_chain{retries = 0, breaker_failures = 3, breaker_open_s = 60}
  for i = 1, 3 do
    srv:queue("openai", standin.openai_error(500, "server_error", nil, "down " .. i))
    srv:queue("anthropic", standin.anthropic_ok("ok " .. i))
    T.eq(assert(chain:request(REQ)).provider, "anthropic")
  end
  T.eq(chain:status()[1].state, "circuit open after 3 failures")
  srv:queue("anthropic", standin.anthropic_ok("skip groq"))
  T.eq(assert(chain:request(REQ)).provider, "anthropic")
  T.eq(#srv.requests.openai, 3)
  now = now + 61  -- half-open: one trial; it fails, so the circuit opens again
  srv:queue("openai", standin.openai_error(500, "server_error", nil, "still down"))
  srv:queue("anthropic", standin.anthropic_ok("x"))
  chain:request(REQ)
  T.eq(chain:status()[1].state, "circuit open after 4 failures")
  now = now + 61  -- trial succeeds: closed
  srv:queue("openai", standin.openai_ok("recovered"))
  T.eq(assert(chain:request(REQ)).provider, "groq")
  T.eq(chain:status()[1].state, "ok")
end)

async("daily budgets persist across a restart and reset at midnight", function()
  local dir = os.tmpname()
  os.remove(dir)
  local state_file = dir .. "/providers/usage.json"
  local budgets = {groq = {tokens = 40, requests = 100}}
  local chain = make_chain{state_file = state_file, budgets = budgets}
  srv:queue("openai", standin.openai_ok("a", {prompt_tokens = 20, completion_tokens = 5}),
            standin.openai_ok("b", {prompt_tokens = 10, completion_tokens = 6}))
  chain:request(REQ)
  chain:request(REQ)
  T.eq(chain:status()[1].budget.tokens_used, 41)
  local restarted = make_chain{state_file = state_file, budgets = budgets}
  T.eq(restarted:status()[1].budget.tokens_used, 41)
  T.matches(restarted:status()[1].detail, "^out of token budget %(41/40 today%)")
  srv:queue("anthropic", standin.anthropic_ok("over budget"))
  T.eq(assert(restarted:request(REQ)).provider, "anthropic")
  T.eq(#srv.requests.openai, 2)
  now = (now // 86400 + 1) * 86400 + 5  -- past midnight UTC
  T.eq(restarted:status()[1].state, "ok")
  T.eq(restarted:status()[1].budget.tokens_used, 0)
  os.execute("rm -rf " .. dir)
end)

async("a provider without a key is skipped and shown as unusable", function()
  local nokeys = keys_mod.new{getenv = function(k) return k == "ANTHROPIC_API_KEY" and CANARY_ANTHROPIC or nil end}
  local chain = fallback.new{providers = {
    openai.new{name = "groq", base_url = srv.base .. "/openai/v1", model = "m", key_env = "GROQ_API_KEY", keys = nokeys},
    anthropic.new{name = "anthropic", base_url = srv.base, model = "m", key_env = "ANTHROPIC_API_KEY", keys = nokeys}}}
  T.eq(chain:status()[1].detail, "unusable: GROQ_API_KEY is not set (environment)")
  srv:queue("anthropic", standin.anthropic_ok("only one with a key"))
  local res = assert(chain:request(REQ))
  T.eq(res.provider, "anthropic")
  T.eq(srv.requests.openai, nil)
end)

async("a custom policy decides the order", function()
  local chain = make_chain{policy = function(_, available)
    local reversed = {}
    for i = #available, 1, -1 do reversed[#reversed + 1] = available[i] end
    return reversed
  end}
  srv:queue("anthropic", standin.anthropic_ok("first by policy"))
  T.eq(assert(chain:request(REQ)).provider, "anthropic")
end)

T.test("keys: missing variables are named, keys files must be 0600", function(done)
  local kdir = os.tmpname()
  os.remove(kdir)
  os.execute("mkdir -p " .. kdir)
  local path = kdir .. "/keys"
  local f = io.open(path, "w")
  f:write("# keys\nGROQ_API_KEY=gsk_from_file_123\nANTHROPIC_API_KEY=\"sk-ant-quoted\"\n")
  f:close()
  os.execute("chmod 644 " .. path)
  local k = keys_mod.new{file = path, getenv = function() return nil end}
  local v, err = k:get("GROQ_API_KEY")
  T.eq(v, nil)
  T.eq(err, ("keys file %s has mode 644; it must be 600 (chmod 600 %s)"):format(path, path))
  os.execute("chmod 600 " .. path)
  k = keys_mod.new{file = path, getenv = function() return nil end}
  T.eq(k:get("GROQ_API_KEY"), "gsk_from_file_123")
  T.eq(k:get("ANTHROPIC_API_KEY"), "sk-ant-quoted")
  T.eq(select(2, k:get("OPENAI_API_KEY")), "OPENAI_API_KEY is not set (environment or " .. path .. ")")
  T.eq(k:redact("echo gsk_from_file_123 back"), "echo [GROQ_API_KEY] back")
  os.execute("rm -rf " .. kdir)
  done()
end)

async("a key echoed by a server is redacted from the error", function()
  local chain = make_chain()
  srv:queue("openai", standin.openai_error(400, "invalid_request_error", nil, "bad key " .. CANARY_GROQ .. " given"))
  srv:queue("anthropic", standin.anthropic_error(400, "invalid_request_error", "nope " .. CANARY_ANTHROPIC))
  local _, err = chain:request(REQ)
  T.matches(err.message, "bad key %[GROQ_API_KEY%] given")
  T.matches(err.message, "nope %[ANTHROPIC_API_KEY%]")
  if err.message:find(CANARY_GROQ, 1, true) or err.message:find(CANARY_ANTHROPIC, 1, true) then
    error("canary key leaked: " .. err.message)
  end
end)

T.test("the server keeps answering while twenty slow provider calls are in flight", function(done)
  srv:reset()
  local http = require "fastbrain.http_client"
  local chain = make_chain{retries = 0}
  for i = 1, 20 do
    srv:queue("openai", {status = 200, delay = 2000, json = standin.openai_ok("slow " .. i).json})
  end
  local slow = {timeout = 5000}  -- the calls wait 2 s, past the providers' 500 ms here
  for k, v in pairs(REQ) do slow[k] = v end
  local finished = 0
  for _ = 1, 20 do
    fb.spawn(function()
      if chain:request(slow) then finished = finished + 1 end
    end)
  end
  fb.spawn(T.guard(done, function()
    -- Until all twenty wait on the stand-in (a loaded machine connects them slowly).
    local deadline = fb.now() + 1500
    while #(srv.requests.openai or {}) < 20 and fb.now() < deadline do fb.sleep(10) end
    T.eq(#(srv.requests.openai or {}), 20)
    local started = fb.now()
    local res = assert(http.request{url = srv.base .. "/health"})
    local took = fb.now() - started
    T.eq(res.status, 200)
    T.eq(finished, 0, "health answered before the slow calls finished")
    if took > 200 then error(("health took %.0f ms behind the slow calls"):format(took)) end
    while finished < 20 do fb.sleep(20) end
    done()
  end))
end, {timeout = 10000})

-- The stand-ins also speak the streaming shapes (not used by the providers yet).
local function sse_events(body)
  local out = {}
  for block in body:gmatch("(.-)\n\n") do
    local ev = {}
    for line in block:gmatch("[^\n]+") do
      local k, v = line:match("^(%w+): ?(.*)$")
      if k == "event" then ev.event = v elseif k == "data" then ev.data = v end
    end
    if ev.data then out[#out + 1] = ev end
  end
  return out
end

async("stand-ins stream in each API's SSE shape", function()
  local http = require "fastbrain.http_client"
  srv:queue("openai", standin.openai_stream("Hello there friend"))
  srv:queue("anthropic", standin.anthropic_stream("Hi from Claude"))
  local res = assert(http.request{url = srv.base .. "/openai/v1/chat/completions", method = "POST",
    headers = {["content-type"] = "application/json"}, body = '{"stream":true,"messages":[]}'})
  T.matches(res.headers["content-type"], "^text/event%-stream")
  local text, events = {}, sse_events(res.body)
  T.eq(events[#events].data, "[DONE]")
  for i = 1, #events - 1 do
    local chunk = fb.json.decode(events[i].data)
    T.eq(chunk.object, "chat.completion.chunk")
    text[#text + 1] = chunk.choices[1].delta.content or ""
  end
  T.eq(table.concat(text), "Hello there friend")
  res = assert(http.request{url = srv.base .. "/v1/messages", method = "POST",
    headers = {["content-type"] = "application/json"}, body = '{"stream":true,"messages":[]}'})
  local names, parts = {}, {}
  for _, ev in ipairs(sse_events(res.body)) do
    names[#names + 1] = ev.event
    local data = fb.json.decode(ev.data)
    T.eq(data.type, ev.event)
    if ev.event == "content_block_delta" then parts[#parts + 1] = data.delta.text end
  end
  T.eq(names[1], "message_start")
  T.eq(names[#names], "message_stop")
  T.eq(table.concat(parts), "Hi from Claude")
end)

T.test("clean up", function() srv:close() end)

T.run()
