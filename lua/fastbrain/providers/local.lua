-- fastbrain.providers.local: the engine's own model as a provider, offline: the base model or
-- a skill's adapter answers the conversation's last user turn (with its system prompt). The
-- model loads on first use and stays loaded. Generation runs on the loop thread, so answers
-- are capped (max_tokens) to keep the server responsive.
local fb = require "fastbrain"
local common = require "fastbrain.providers.common"

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
  if not self.model then
    local m, err = fb.model.load(self.model_dir)
    if not m then return nil, common.error("bad_request", self.name .. ": " .. tostring(err)) end
    self.model = m
  end
  local prompt
  for _, msg in ipairs(req.messages) do if msg.role == "user" then prompt = msg.content end end
  if not prompt then return nil, common.error("bad_request", self.name .. ": no user message") end
  local ok, text, info = pcall(self.model.generate, self.model, prompt, {
    system = req.system, adapter = self.adapter, temperature = req.temperature or 0,
    max_tokens = math.min(req.max_tokens or self.max_tokens, self.max_tokens)})
  if not ok or not text then
    return nil, common.error("bad_request", self.name .. ": " .. tostring(ok and info or text))
  end
  return {text = text, model = self.model_dir, limits = {},
          usage = {input_tokens = 0, output_tokens = info.tokens}}
end

return M
