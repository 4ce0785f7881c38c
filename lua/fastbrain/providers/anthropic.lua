-- fastbrain.providers.anthropic: the Messages API (/v1/messages, x-api-key,
-- anthropic-version, a top-level system prompt, content blocks in the reply); reads the
-- anthropic-ratelimit-* headers and 529 overloaded_error.
local common = require "fastbrain.providers.common"

local M = {VERSION = "2023-06-01"}
local Provider = common.class()

-- new{name=, base_url= (default https://api.anthropic.com), model=, key_env=, keys=, timeout=ms,
--     tls=, clock=}
function M.new(cfg)
  return common.new(Provider, "anthropic", cfg, {"name", "model", "key_env"}, "https://api.anthropic.com")
end

local function limits(headers)
  local function reset(kind) return common.parse_rfc3339(headers["anthropic-ratelimit-" .. kind .. "-reset"] or "") end
  return {
    requests_remaining = tonumber(headers["anthropic-ratelimit-requests-remaining"] or ""),
    tokens_remaining = tonumber(headers["anthropic-ratelimit-tokens-remaining"] or ""),
    requests_reset_at = reset("requests"),
    tokens_reset_at = reset("tokens"),
  }
end

function Provider:chat(req)
  local key, kerr = self.keys:get(self.key_env)
  if not key then return nil, common.error("auth", self.name .. ": " .. kerr) end
  local messages = {}
  for _, m in ipairs(req.messages) do messages[#messages + 1] = {role = m.role, content = m.content} end
  local body, rheaders = common.post_json(self.name, self.base_url .. "/v1/messages",
    {["x-api-key"] = key, ["anthropic-version"] = M.VERSION},
    {model = self.model, max_tokens = req.max_tokens or 1024, system = req.system,
     messages = messages, temperature = req.temperature},
    {timeout = req.timeout or self.timeout, tls = self.tls, clock = self.clock},
    function(s) return self.keys:redact(s) end)
  if not body then return nil, rheaders end
  local parts = {}
  for _, block in ipairs(type(body.content) == "table" and body.content or {}) do
    if type(block) == "table" and block.type == "text" and type(block.text) == "string" then
      parts[#parts + 1] = block.text
    end
  end
  if #parts == 0 then return nil, common.error("malformed", self.name .. ": no text content block") end
  local usage = type(body.usage) == "table" and body.usage or {}
  return {text = table.concat(parts), model = body.model, limits = limits(rheaders),
          usage = {input_tokens = tonumber(usage.input_tokens) or 0,
                   output_tokens = tonumber(usage.output_tokens) or 0}}
end

return M
