-- fastbrain.fallback: an ordered chain of providers with rate-limit awareness. A request goes
-- to the first available provider; rate limits and quota errors cool a provider down until its
-- reset, auth errors make it unusable, 5xx/529/timeouts are retried twice with jittered
-- backoff, a circuit breaker opens after repeated failures, and daily token/request budgets are
-- counted from reported usage and persisted so a restart does not reset them.
local fb = require "fastbrain"

local M = {}
local Chain = {}
Chain.__index = Chain

local RETRYABLE = {server = true, overloaded = true, timeout = true, network = true, malformed = true}

local function utc_day(t) return os.date("!%Y-%m-%d", math.floor(t)) end
local function next_midnight(t) return (math.floor(t) // 86400 + 1) * 86400 end
local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end

-- A provider is {name=, chat=fn(self, req)} and may have ready(self) -> true | nil, why (e.g. no
-- key configured), checked before each use.
-- new{providers = {p...}, state_file =, budgets = {name = {tokens =, requests =}}, retries = 2,
--     backoff_ms = 500, backoff_cap_ms = 8000, breaker_failures = 5, breaker_open_s = 60,
--     policy = fn(chain, available) -> ordered, clock = os.time, sleep = fb.sleep, random =}
function M.new(opts)
  if type(opts) ~= "table" or type(opts.providers) ~= "table" or #opts.providers == 0 then
    error("fallback.new: providers (a non-empty list) is required", 2)
  end
  local chain = setmetatable({
    providers = opts.providers, state_file = opts.state_file, budgets = opts.budgets or {},
    retries = opts.retries or 2, backoff_ms = opts.backoff_ms or 500,
    backoff_cap_ms = opts.backoff_cap_ms or 8000, breaker_failures = opts.breaker_failures or 5,
    breaker_open_s = opts.breaker_open_s or 60, policy = opts.policy, clock = opts.clock or os.time,
    sleep = opts.sleep or fb.sleep, random = opts.random or math.random, state = {},
  }, Chain)
  for _, p in ipairs(chain.providers) do
    if type(p.name) ~= "string" or type(p.chat) ~= "function" then
      error("fallback.new: each provider needs a name and a chat method", 2)
    end
    chain.state[p.name] = {failures = 0, usage = {day = utc_day(chain.clock()), tokens = 0, requests = 0}}
  end
  chain:load()
  return chain
end

-- Budgets persisted as {providers = {name = {day=, tokens=, requests=}}}.
function Chain:load()
  if not self.state_file then return end
  local text = fb.fs.read(self.state_file)
  if not text then return end
  local saved, err = fb.json.decode(text)
  if type(saved) ~= "table" or type(saved.providers) ~= "table" then
    fb.log.warn("fallback: ignoring %s: %s", self.state_file, err or "not an object with providers")
    return
  end
  for name, u in pairs(saved.providers) do
    local st = self.state[name]
    if st and type(u) == "table" and u.day == utc_day(self.clock()) then
      st.usage = {day = u.day, tokens = tonumber(u.tokens) or 0, requests = tonumber(u.requests) or 0}
    end
  end
end

function Chain:save()
  if not self.state_file then return end
  local out = {providers = {}}
  for name, st in pairs(self.state) do out.providers[name] = st.usage end
  local dir = self.state_file:match("^(.*)/[^/]+$")
  if dir then fb.fs.mkdir_p(dir) end
  local ok, err = fb.fs.write_atomic(self.state_file, fb.json.encode(out))
  if not ok then fb.log.warn("fallback: cannot save usage: %s", err) end
end

local function usage_today(self, st)
  local today = utc_day(self.clock())
  if st.usage.day ~= today then st.usage = {day = today, tokens = 0, requests = 0} end
  return st.usage
end

-- Why `p` cannot take a request now, and until when; nil when it can.
function Chain:unavailable(p)
  local st, now = self.state[p.name], self.clock()
  if st.unusable then return "unusable: " .. st.unusable, math.huge end
  if p.ready then
    local ok, why = p:ready()
    if not ok then return "unusable: " .. why, math.huge end
  end
  if st.cooldown_until and now < st.cooldown_until then return "cooling down: " .. st.cooldown_reason, st.cooldown_until end
  if st.open_until then
    if now < st.open_until then return "circuit open after " .. st.failures .. " failures", st.open_until end
    st.half_open = true  -- one trial request decides
  end
  local budget, usage = self.budgets[p.name], usage_today(self, st)
  if budget then
    if budget.tokens and usage.tokens >= budget.tokens then
      return ("out of token budget (%d/%d today)"):format(usage.tokens, budget.tokens), next_midnight(now)
    end
    if budget.requests and usage.requests >= budget.requests then
      return ("out of request budget (%d/%d today)"):format(usage.requests, budget.requests), next_midnight(now)
    end
  end
  return nil
end

local function record_success(self, p, result)
  local st = self.state[p.name]
  st.failures, st.open_until, st.half_open, st.last_error = 0, nil, nil, nil
  local usage = usage_today(self, st)
  usage.requests = usage.requests + 1
  usage.tokens = usage.tokens + (result.usage and (result.usage.input_tokens + result.usage.output_tokens) or 0)
  -- A provider that says it has nothing left waits for its own reset.
  local l = result.limits or {}
  local reset
  if l.requests_remaining == 0 then reset = l.requests_reset_at end
  if l.tokens_remaining == 0 and (l.tokens_reset_at or 0) > (reset or 0) then reset = l.tokens_reset_at end
  if reset then st.cooldown_until, st.cooldown_reason = reset, "rate limit exhausted" end
  self:save()
end

local function record_failure(self, p, err)
  local st, now = self.state[p.name], self.clock()
  st.last_error = err.message
  if err.kind == "auth" then
    if not st.unusable then fb.log.error("%s", err.message) end  -- reported once
    st.unusable = err.message
  elseif err.kind == "rate_limited" then
    st.cooldown_until, st.cooldown_reason = err.retry_at or now + 60, "rate limited"
  elseif err.kind == "quota" then
    st.cooldown_until, st.cooldown_reason = next_midnight(now), "quota or billing limit"
  end
  if RETRYABLE[err.kind] then
    st.failures = st.failures + 1
    if st.half_open or st.failures >= self.breaker_failures then
      st.open_until, st.half_open = now + self.breaker_open_s, nil
    end
  end
end

-- One provider with retries for transient errors: result, or nil and the last error.
local function try_provider(self, p, req)
  local err
  for attempt = 0, self.retries do
    if attempt > 0 then
      local delay = math.min(self.backoff_ms * 2 ^ (attempt - 1), self.backoff_cap_ms)
      self.sleep(math.floor(delay * (0.5 + 0.5 * self.random())))
    end
    local result
    result, err = p:chat(req)
    if result then
      record_success(self, p, result)
      return result
    end
    record_failure(self, p, err)
    if not RETRYABLE[err.kind] or self:unavailable(p) then break end
    if err.retry_at and err.retry_at > self.clock() + self.backoff_cap_ms / 1000 then break end
  end
  return nil, err
end

-- request(req) -> result with .provider and .fallbacks {{provider=, reason=}}, or nil and an
-- error table {message=, reasons=, next_at=} saying which provider comes back first and when.
function Chain:request(req)
  local available, reasons, first_back = {}, {}, nil
  for _, p in ipairs(self.providers) do
    local why, until_ = self:unavailable(p)
    if why then
      reasons[#reasons + 1] = {provider = p.name, reason = why, until_ = until_}
      if until_ ~= math.huge and (not first_back or until_ < first_back.at) then
        first_back = {provider = p.name, at = until_}
      end
    else
      available[#available + 1] = p
    end
  end
  if self.policy then available = self.policy(self, available) end
  local fallbacks = {}
  for _, r in ipairs(reasons) do fallbacks[#fallbacks + 1] = {provider = r.provider, reason = r.reason} end
  for _, p in ipairs(available) do
    local result, err = try_provider(self, p, req)
    if result then
      result.provider, result.fallbacks = p.name, fallbacks
      return result
    end
    fallbacks[#fallbacks + 1] = {provider = p.name, reason = err.kind .. ": " .. err.message}
    local _, until_ = self:unavailable(p)
    if until_ and until_ ~= math.huge and (not first_back or until_ < first_back.at) then
      first_back = {provider = p.name, at = until_}
    end
  end
  local parts = {}
  for _, f in ipairs(fallbacks) do parts[#parts + 1] = f.provider .. " (" .. f.reason .. ")" end
  local msg = "no provider could answer: " .. table.concat(parts, "; ")
  if first_back then msg = msg .. ("; first back: %s at %s"):format(first_back.provider, iso(first_back.at)) end
  return nil, {message = msg, reasons = fallbacks, next_at = first_back and first_back.at,
               next_provider = first_back and first_back.provider}
end

-- status() -> one row per provider for the dashboard (no keys): name, state, until, budget,
-- last_error.
function Chain:status()
  local rows = {}
  for _, p in ipairs(self.providers) do
    local st = self.state[p.name]
    local why, until_ = self:unavailable(p)
    local usage, budget = usage_today(self, st), self.budgets[p.name] or {}
    rows[#rows + 1] = {
      name = p.name, state = why and why:match("^[^:(]+"):gsub("%s+$", "") or "ok",
      detail = why, ["until"] = until_ and until_ ~= math.huge and iso(until_) or nil,
      budget = {day = usage.day, tokens_used = usage.tokens, tokens_limit = budget.tokens,
                requests_used = usage.requests, requests_limit = budget.requests},
      last_error = st.last_error,
    }
  end
  return rows
end

return M
