-- fastbrain.tips: the dashboard's rotating facts about LoRA and training, some quoting the
-- live job ({fraction}, {tokens_per_s}, {device}). M.next(state, job) gives the next tip whose
-- placeholders the job can fill; the training API sends one every M.interval_ms as an SSE
-- "tip" event. It does not send anything itself.
local fb = require "fastbrain"

local M = {}

-- FASTBRAIN_TIP_MS shortens the rotation (the browser tests use it).
M.interval_ms = math.tointeger(tonumber(os.getenv("FASTBRAIN_TIP_MS") or "")) or 6000

M.list = {
  "LoRA freezes the base model and learns two small matrices A (r x in) and B (out x r) per " ..
    "adapted layer; the update added to a weight is B·A scaled by alpha/r.",
  "This run trains {fraction} of the base model's parameters: the rest stay frozen, which is " ..
    "why an adapter is megabytes while the model is gigabytes.",
  "B starts at zero, so at step 0 the adapted model is exactly the base model and training " ..
    "moves it away only as far as the data asks.",
  "The rank r bounds how much an adapter can change a layer. 8 to 16 is plenty for teaching " ..
    "a tone and a job's facts; higher ranks mostly cost memory.",
  "Training is running at {tokens_per_s} tokens per second on {device}.",
  "Loss is the average negative log-probability of the answer tokens: a loss of 0.7 means the " ..
    "model gives the right next token about e^-0.7 ≈ 50% probability on average.",
  "Only the assistant's answers are trained on: the system prompt and the user's words are " ..
    "context, masked out of the loss.",
  "Eval loss is measured on examples held out of training. When it rises while training loss " ..
    "keeps falling, the adapter has started memorising instead of learning.",
  "With 50 to 500 examples, a few epochs are usually enough: more passes mostly teach the " ..
    "model to repeat its training answers word for word.",
  "The learning rate warms up over the first steps, then decays along a cosine: large early " ..
    "steps would wreck the freshly initialised adapter.",
  "AdamW keeps two running averages per trained parameter, so LoRA's small parameter count " ..
    "also shrinks the optimizer's memory by the same factor.",
  "Gradient clipping caps the norm of each update, so one odd example cannot throw the " ..
    "adapter far off course.",
  "Examples longer than max_len are cut. The data view counts them: a cut answer teaches the " ..
    "model to stop mid-sentence.",
  "Duplicate prompts weigh twice in training. A few are fine; many make the adapter lopsided " ..
    "towards those questions.",
  "An adapter is saved in PEFT format, so it loads with peft.PeftModel.from_pretrained and in " ..
    "servers that take LoRA adapters, next to the same base model.",
  "One base model can serve many adapters: each skill is a few megabytes swapped in on top " ..
    "of the same frozen weights.",
  "A cancelled run writes a checkpoint first (LoRA weights, optimizer state, random state and " ..
    "step), so Resume continues exactly where it stopped.",
  "The sample answers are generated from fixed prompts during training: watching them change " ..
    "is the quickest way to see what the adapter is learning.",
  "rsLoRA scales the update by alpha/sqrt(r) instead of alpha/r, which keeps higher ranks " ..
    "from learning more slowly than low ones.",
  "LoRA dropout randomly zeroes the adapter's input during training, a mild regulariser for " ..
    "small datasets.",
  "A falling loss is necessary but not sufficient: try the adapter in the preview against the " ..
    "base model on prompts it never saw.",
}

local ALL_TARGETS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

local function target_set(targets)
  local list = targets
  if targets == nil or targets == "all-linear" then
    list = ALL_TARGETS
  elseif type(targets) == "string" then
    list = {}
    for name in targets:gmatch("[^,%s]+") do list[#list + 1] = name end
  end
  local set = {}
  for _, name in ipairs(list) do set[name] = true end
  return set
end

-- The share of a Llama-family model's parameters a LoRA trains, from the model's config.json
-- table and the spec's lora table -> fraction (0..1), or nil when the config lacks a size.
function M.lora_fraction(config, lora)
  local h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
  local heads, vocab = config.num_attention_heads, config.vocab_size
  if not (h and inter and layers and heads and vocab) then return nil end
  local qwen3 = config.model_type == "qwen3"
  local hd = config.head_dim or (qwen3 and 128) or h // heads  -- Qwen3Config's default is 128
  local q, kv = hd * heads, hd * (config.num_key_value_heads or heads)
  local shapes = {q_proj = {h, q}, k_proj = {h, kv}, v_proj = {h, kv}, o_proj = {q, h},
                  gate_proj = {h, inter}, up_proj = {h, inter}, down_proj = {inter, h}}
  local r = (lora and lora.r) or 16
  local per_layer, trained = 2 * h, 0  -- the two norms
  for _, s in pairs(shapes) do per_layer = per_layer + s[1] * s[2] end
  for name in pairs(target_set(lora and lora.targets)) do
    local s = shapes[name]
    if s then trained = trained + r * (s[1] + s[2]) end
  end
  if config.model_type == "qwen2" then
    per_layer = per_layer + q + 2 * kv  -- q/k/v biases
  elseif config.attention_bias == true then
    per_layer = per_layer + q + 2 * kv + h  -- and o_proj's
  end
  if qwen3 then per_layer = per_layer + 2 * hd end  -- q_norm, k_norm
  local heads_out = config.tie_word_embeddings and 0 or vocab * h
  local total = layers * per_layer + vocab * h + heads_out + h + layers * trained
  return layers * trained / total
end

-- The numbers a tip may quote, from the job table: its spec, and its progress while it runs.
function M.values(job)
  local v = {}
  local p = job.state == "running" and type(job.progress) == "table" and job.progress or {}
  if type(p.tokens_per_s) == "number" and p.tokens_per_s > 0 then
    v.tokens_per_s = ("%.0f"):format(p.tokens_per_s)
  end
  if type(p.device) == "string" then
    v.device = p.device == "cpu" and "the CPU" or type(p.device_name) == "string" and p.device_name or "the GPU"
  end
  local spec = job.spec
  local dir = type(spec) == "table" and type(spec.model) == "string" and fb.model.locate(spec.model)
  local text = dir and fb.fs.read(dir .. "/config.json")
  local config = text and fb.json.decode(text)
  local f = type(config) == "table" and M.lora_fraction(config, spec.lora)
  if f then v.fraction = ("%.2f%%"):format(f * 100) end
  return v
end

-- The next tip after state.index (updated) that values can fill, as text.
function M.next(state, values)
  for _ = 1, #M.list do
    state.index = state.index % #M.list + 1
    local missing = false
    local text = M.list[state.index]:gsub("{([%w_]+)}", function(name)
      if values[name] == nil then missing = true end
      return values[name]
    end)
    if not missing then return text end
  end
end

return M
