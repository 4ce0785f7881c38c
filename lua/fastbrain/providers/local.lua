-- fastbrain.providers.local: the engine's own model as a provider, offline: the base model or
-- a skill's adapter answers the conversation's last user turn (with its system prompt). Each
-- answer comes from a child process (fastbrain.answer), so the server keeps serving while the
-- model works; the usage reported is the answer's length in the model's tokens.
local fb = require "fastbrain"
local common = require "fastbrain.providers.common"
local answer = require "fastbrain.answer"
local tokenizer = require "fastbrain.tokenizer"

local M = {}
local Provider = common.class()

-- new{name = "local", model = dir, adapter = dir|nil, max_tokens = 256}
function M.new(cfg)
  if type(cfg.model) ~= "string" then error("local provider: model (a directory) is required", 2) end
  return setmetatable({name = cfg.name or "local", model_dir = cfg.model, adapter = cfg.adapter,
                       max_tokens = cfg.max_tokens or 256}, Provider)
end

-- ready() -> true, or nil and why (no model there).
function Provider:ready()
  if not fb.fs.mode(self.model_dir .. "/config.json") then return nil, "no model at " .. self.model_dir end
  return true
end

function Provider:chat(req)
  local prompt
  for _, msg in ipairs(req.messages) do if msg.role == "user" then prompt = msg.content end end
  if not prompt then return nil, common.error("bad_request", self.name .. ": no user message") end
  if not self.tokenizer then
    local tok, terr = tokenizer.load(self.model_dir)
    if not tok then return nil, common.error("bad_request", self.name .. ": " .. tostring(terr)) end
    self.tokenizer = tok
  end
  local max_tokens = math.min(req.max_tokens or self.max_tokens, self.max_tokens)
  local pending, err = answer.start(self.model_dir, prompt, {
    system = req.system, adapter = self.adapter, temperature = req.temperature or 0, max_tokens = max_tokens})
  local text
  if pending then text, err = answer.wait(pending) end
  if not text then return nil, common.error("bad_request", self.name .. ": " .. err) end
  -- The answer re-encoded: bytes a byte-level model left invalid decode to replacement
  -- characters, which re-encode longer, so the count is capped at what was asked.
  return {text = text, model = self.model_dir, limits = {},
          usage = {input_tokens = 0, output_tokens = math.min(#self.tokenizer:encode(text), max_tokens)}}
end

return M
