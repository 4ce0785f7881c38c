-- fastbrain.providers.common: what every remote provider shares: the JSON POST, reading
-- rate-limit signals (retry-after, reset headers) into absolute times, and one error shape.
-- Errors are tables {kind=, message=, status=, retry_at=}; kinds: rate_limited, overloaded,
-- server, timeout, network, auth, quota, bad_request, malformed.
local http = require "fastbrain.http_client"
local json = require("fastbrain").json

local M = {}

-- Days since 1970-01-01 of a civil (proleptic Gregorian) date, independent of the local zone.
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m > 2 and m - 3 or m + 9) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function epoch(y, mo, d, h, mi, s)
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
                Oct = 10, Nov = 11, Dec = 12}

-- "Wed, 21 Oct 2015 07:28:00 GMT" -> epoch seconds, or nil
function M.parse_http_date(s)
  local d, mon, y, h, mi, sec = s:match("^%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then return nil end
  return epoch(tonumber(y), MONTHS[mon], tonumber(d), tonumber(h), tonumber(mi), tonumber(sec))
end

-- "2026-11-29T12:00:30Z" (fraction and offset allowed) -> epoch seconds, or nil
function M.parse_rfc3339(s)
  local y, mo, d, h, mi, sec, frac, zone = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not y then return nil end
  local t = epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec))
  t = t + (tonumber("0" .. frac) or 0)
  if zone == "Z" or zone == "z" then return t end
  local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d%d)$")
  if not sign then return nil end
  local off = tonumber(zh) * 3600 + tonumber(zm) * 60
  return sign == "+" and t - off or t + off
end

-- OpenAI/Groq reset durations: "1m30.5s", "6s", "250ms", "2h0m0s" -> seconds, or nil
function M.parse_duration(s)
  if not s or s == "" then return nil end
  local total, rest = 0, s
  while rest ~= "" do
    local num, unit, after = rest:match("^(%d+%.?%d*)(ms)(.*)$")
    if not num then num, unit, after = rest:match("^(%d+%.?%d*)([hms])(.*)$") end
    if not num then return nil end
    total = total + tonumber(num) * ({h = 3600, m = 60, s = 1, ms = 0.001})[unit]
    rest = after
  end
  return total
end

-- When a 429/503/529 says to come back: retry-after-ms, retry-after (seconds or HTTP date).
function M.retry_at(headers, now)
  local ms = tonumber(headers["retry-after-ms"] or "")
  if ms then return now + ms / 1000 end
  local ra = headers["retry-after"]
  if ra then
    local secs = tonumber(ra)
    if secs then return now + secs end
    return M.parse_http_date(ra)
  end
  return nil
end

-- What every provider object shares: construction from a config table and ready().
local Base = {}

-- ready() -> true, or nil and why (its key is not configured).
function Base:ready()
  if not self.key_env then return true end
  local key, err = self.keys:get(self.key_env)
  if not key then return nil, err end
  return true
end

-- A provider class: its methods fall back to Base's.
function M.class()
  local class = setmetatable({}, {__index = Base})
  class.__index = class
  return class
end

-- new(class, kind, cfg, required_fields [, default_base_url]) -> provider; cfg: name, base_url,
-- model, key_env, keys, timeout (ms), tls, clock. Misuse raises at the caller's caller.
function M.new(class, kind, cfg, required, default_base_url)
  for _, field in ipairs(required) do
    if type(cfg[field]) ~= "string" then error(kind .. " provider: " .. field .. " (string) is required", 3) end
  end
  return setmetatable({name = cfg.name, base_url = (cfg.base_url or default_base_url):gsub("/+$", ""),
                       model = cfg.model, key_env = cfg.key_env, keys = cfg.keys,
                       timeout = cfg.timeout or 60000, tls = cfg.tls, clock = cfg.clock or os.time}, class)
end

function M.error(kind, message, fields)
  local e = fields or {}
  e.kind, e.message = kind, message
  return e
end

-- Build the error for a non-2xx answer. `detail` is the API's own error (type/code/message).
function M.http_error(name, status, headers, detail, now)
  local msg = ("%s: HTTP %d%s"):format(name, status, detail.message and (": " .. detail.message) or "")
  local fields = {status = status, retry_at = M.retry_at(headers, now)}
  local code = tostring(detail.code or "") .. " " .. tostring(detail.type or "")
  if code:find("insufficient_quota") or code:find("billing") or (detail.message or ""):lower():find("credit balance")
     or (detail.message or ""):lower():find("spend limit") then
    return M.error("quota", msg, fields)
  end
  if status == 401 or status == 403 then return M.error("auth", msg, fields) end
  if status == 429 then return M.error("rate_limited", msg, fields) end
  if status == 529 or code:find("overloaded") then return M.error("overloaded", msg, fields) end
  if status >= 500 then return M.error("server", msg, fields) end
  return M.error("bad_request", msg, fields)
end

-- POST a JSON body; -> decoded body, headers | nil, error table. `redact` cleans any text
-- that leaves here, so a key the server echoes back never reaches a log.
function M.post_json(name, url, headers, body, opts, redact)
  headers["content-type"] = "application/json"
  local res, err = http.request{url = url, method = "POST", headers = headers,
                                body = json.encode(body), timeout = opts.timeout,
                                tls = opts.tls}
  if not res then
    err = redact(err)
    return nil, M.error(err:find("timeout after") and "timeout" or "network", name .. ": " .. err)
  end
  local decoded = json.decode(res.body)
  if res.status < 200 or res.status > 299 then
    local detail = type(decoded) == "table" and type(decoded.error) == "table" and decoded.error or {}
    local d = {type = detail.type, code = detail.code,
               message = detail.message and redact(tostring(detail.message)):sub(1, 300)}
    return nil, M.http_error(name, res.status, res.headers, d, opts.clock())
  end
  if type(decoded) ~= "table" then
    return nil, M.error("malformed", name .. ": response is not a JSON object")
  end
  return decoded, res.headers
end

return M
