-- fastbrain.providers: the default provider chain: Groq, then Anthropic, then the engine's own
-- model (`local`, offline; the bundled base model unless FASTBRAIN_MODEL names another). Base
-- URLs and models can be set with
-- GROQ_BASE_URL / GROQ_MODEL and ANTHROPIC_BASE_URL / ANTHROPIC_MODEL, keys with GROQ_API_KEY
-- and ANTHROPIC_API_KEY or a 0600 keys file (keys_file, else <data_dir>/keys). The chain's
-- `keys` is that fastbrain.keys object.
local openai = require "fastbrain.providers.openai"
local anthropic = require "fastbrain.providers.anthropic"
local local_model = require "fastbrain.providers.local"
local fallback = require "fastbrain.fallback"
local keys_mod = require "fastbrain.keys"
local fb = require "fastbrain"

local M = {
  GROQ_FREE_TOKENS_PER_DAY = 100000,
}

-- default_chain{data_dir=, keys_file=, getenv=, model=} -> fallback chain
function M.default_chain(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local file = opts.keys_file ~= "" and opts.keys_file or (opts.data_dir and opts.data_dir .. "/keys")
  local keys = keys_mod.new{file = file, getenv = getenv}
  local providers = {
    openai.new{name = "groq", keys = keys, key_env = "GROQ_API_KEY",
               base_url = getenv("GROQ_BASE_URL") or "https://api.groq.com/openai/v1",
               model = getenv("GROQ_MODEL") or "llama-3.1-8b-instant"},
    anthropic.new{name = "anthropic", keys = keys, key_env = "ANTHROPIC_API_KEY",
                  base_url = getenv("ANTHROPIC_BASE_URL"),
                  model = getenv("ANTHROPIC_MODEL") or "claude-3-5-haiku-20241022"},
    local_model.new{model = opts.model or getenv("FASTBRAIN_MODEL") or (fb.root .. "/share/models/tiny")},
  }
  local chain = fallback.new{
    providers = providers,
    state_file = opts.data_dir and (opts.data_dir .. "/providers/usage.json"),
    budgets = {groq = {tokens = M.GROQ_FREE_TOKENS_PER_DAY}},
  }
  chain.keys = keys
  return chain
end

return M
