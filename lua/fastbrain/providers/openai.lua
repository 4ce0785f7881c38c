-- fastbrain.providers.openai: OpenAI-compatible chat completions (/chat/completions with a
-- Bearer key): OpenAI, Groq (base URL https://api.groq.com/openai/v1), vLLM, llama.cpp's
-- server, Ollama. Reads the x-ratelimit-* headers Groq and OpenAI send.
local common = require "fastbrain.providers.common"

local M = {}
local Provider = common.class()

-- new{name=, base_url=, model=, key_env= (none for servers without keys), keys=, timeout=ms,
--     tls=, clock=}
function M.new(cfg)
  return common.new(Provider, "openai", cfg, {"name", "base_url", "model"})
end

local function limits(headers, now)
  local l = {
    requests_remaining = tonumber(headers["x-ratelimit-remaining-requests"] or ""),
    tokens_remaining = tonumber(headers["x-ratelimit-remaining-tokens"] or ""),
  }
  local rr = common.parse_duration(headers["x-ratelimit-reset-requests"])
  local rt = common.parse_duration(headers["x-ratelimit-reset-tokens"])
  l.requests_reset_at = rr and now + rr
  l.tokens_reset_at = rt and now + rt
  return l
end

-- chat{messages=, system=, max_tokens=, temperature=} -> {text, usage, model, limits} | nil, err
function Provider:chat(req)
  local headers = {}
  local redact = function(s) return s end
  if self.key_env then
    local key, kerr = self.keys:get(self.key_env)
    if not key then return nil, common.error("auth", self.name .. ": " .. kerr) end
    headers.authorization = "Bearer " .. key
    redact = function(s) return self.keys:redact(s) end
  end
  local messages = {}
  if req.system then messages[1] = {role = "system", content = req.system} end
  for _, m in ipairs(req.messages) do messages[#messages + 1] = {role = m.role, content = m.content} end
  local body, rheaders = common.post_json(self.name, self.base_url .. "/chat/completions", headers,
    {model = self.model, messages = messages, max_tokens = req.max_tokens, temperature = req.temperature},
    {timeout = req.timeout or self.timeout, tls = self.tls, clock = self.clock}, redact)
  if not body then return nil, rheaders end
  local choice = type(body.choices) == "table" and body.choices[1]
  local text = type(choice) == "table" and type(choice.message) == "table" and choice.message.content
  if type(text) ~= "string" then return nil, common.error("malformed", self.name .. ": no choices[1].message.content") end
  local usage = type(body.usage) == "table" and body.usage or {}
  return {text = text, model = body.model, limits = limits(rheaders, self.clock()),
          usage = {input_tokens = tonumber(usage.prompt_tokens) or 0,
                   output_tokens = tonumber(usage.completion_tokens) or 0}}
end

return M
