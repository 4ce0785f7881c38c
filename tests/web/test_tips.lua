-- fastbrain.tips: the trained fraction against PEFT's own count for a published model, the
-- live numbers only while the job runs, a rotation that skips tips it cannot fill, and the
-- training event stream sending its first tip on connect, not one interval later.
local T = require "tests.lua.testing"
local tips = require "fastbrain.tips"
local fb = require "fastbrain"
local server = require "tests.api.server"
local client = require "tests.http.client"

-- TinyLlama-1.1B (config.json) with r = 8 on q_proj and v_proj: PEFT's print_trainable_parameters
-- says "trainable params: 1,126,400 || all params: 1,101,174,784".
local TINYLLAMA = {hidden_size = 2048, intermediate_size = 5632, num_hidden_layers = 22,
                   num_attention_heads = 32, num_key_value_heads = 4, vocab_size = 32000,
                   model_type = "llama", tie_word_embeddings = false}

T.test("the trained fraction matches PEFT's count", function()
  local f = tips.lora_fraction(TINYLLAMA, {r = 8, targets = {"q_proj", "v_proj"}})
  T.eq(math.abs(f - 1126400 / 1101174784) < 1e-12, true)
  T.eq(math.abs(tips.lora_fraction(TINYLLAMA, {r = 8, targets = "q_proj, v_proj"}) - f) < 1e-15, true)
  T.eq(tips.lora_fraction(TINYLLAMA, {r = 8}), tips.lora_fraction(TINYLLAMA, {r = 8, targets = "all-linear"}))
  T.eq(tips.lora_fraction({hidden_size = 8}, {}), nil)
end)

-- Qwen3-0.6B: head_dim 128 where hidden / heads is 64 (q_proj is [2048, 1024]), q_norm and k_norm;
-- 596,049,920 weights (engine/model_config.c counts the same tensors), and r = 16 on q_proj and
-- v_proj trains 28 * 16 * ((1024 + 2048) + (1024 + 1024)) = 2,293,760 more.
local QWEN3_06B = {hidden_size = 1024, intermediate_size = 3072, num_hidden_layers = 28,
                   num_attention_heads = 16, num_key_value_heads = 8, head_dim = 128,
                   vocab_size = 151936, model_type = "qwen3", tie_word_embeddings = true,
                   attention_bias = false}

T.test("the trained fraction of a Qwen3", function()
  local f = tips.lora_fraction(QWEN3_06B, {r = 16, targets = {"q_proj", "v_proj"}})
  T.eq(math.abs(f - 2293760 / (596049920 + 2293760)) < 1e-12, true)
  QWEN3_06B.head_dim = nil  -- Qwen3Config's default is the same 128
  T.eq(tips.lora_fraction(QWEN3_06B, {r = 16, targets = {"q_proj", "v_proj"}}), f)
end)

T.test("live numbers only while the job runs", function()
  local progress = {tokens_per_s = 1234.4, device = "cpu"}
  T.eq(tips.values({state = "running", progress = progress}), {tokens_per_s = "1234", device = "the CPU"})
  progress = {tokens_per_s = 900, device = "cuda", device_name = "NVIDIA H200 (sm_90, 139.8 GiB)"}
  T.eq(tips.values({state = "running", progress = progress}).device, "NVIDIA H200 (sm_90, 139.8 GiB)")
  T.eq(tips.values({state = "succeeded", progress = progress}), {})
end)

T.test("the rotation skips tips it cannot fill and wraps", function()
  local state, seen = {index = 0}, {}
  for _ = 1, #tips.list do
    local text = tips.next(state, {})
    T.eq(text:find("{", 1, true), nil, "no placeholder left")
    seen[text] = true
  end
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  T.eq(n < #tips.list and n >= 15, true, "every fillable tip, once")
  state = {index = 0}
  for _ = 1, #tips.list do
    T.eq(tips.next(state, {fraction = "0.10%", tokens_per_s = "1", device = "the CPU"}):find("{", 1, true), nil)
  end
  T.eq(state.index, #tips.list)
end)

T.test("the event stream sends a tip as soon as it opens", function()
  tips.interval_ms = 60000  -- read when a stream opens: only the first tip can arrive
  local app = server.start()
  local c = client.connect(app.port)
  c:send(("GET /api/training/events/plumbing-receptionist HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"):format(app.port))
  local text = c:read_until("event: tip", 5000)
  c:close()
  server.stop(app)
  T.matches(text, "event: tip\ndata: {[^\n]*\"text\":\"%u")
end)

T.run()
