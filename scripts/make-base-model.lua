-- make-base-model.lua: the recipe of the bundled base model share/models/tiny. A small Llama
-- (byte tokenizer, chatml template) starts from random weights and is trained in full-parameter
-- mode by fastbrain's own trainer on the texts the project ships: share/corpus/*.txt (prose,
-- each document cut into chunks and framed as a chat answer), share/corpus/*.jsonl (dialogues)
-- and every bundled skill's data.jsonl.
--   fastbrain run scripts/make-base-model.lua --out share/models/tiny [--steps N] [--seed S]
local fb = require "fastbrain"
local lm = require "fastbrain.lm"

local USAGE = "usage: fastbrain run scripts/make-base-model.lua --out DIR [--steps N --seed S --lr X " ..
  "--micro-batch N --max-len N]\n"

local function parse(args)
  local opts = {steps = 600, seed = 1234, lr = 2e-3, micro_batch = 4, max_len = 1024}
  local i = 1
  while i <= #args do
    local key = args[i]:match("^%-%-([%w-]+)$")
    key = key and key:gsub("-", "_")
    if not key or not (key == "out" or opts[key]) then return nil, "unknown argument " .. args[i] end
    local v = args[i + 1]
    if key ~= "out" then v = tonumber(v) end
    if v == nil then return nil, args[i] .. (key == "out" and " needs a value" or " needs a number") end
    opts[key], i = v, i + 2
  end
  if not opts.out then return nil, "--out DIR is required" end
  return opts
end

local config = {
  architectures = {"LlamaForCausalLM"}, model_type = "llama", vocab_size = 258, hidden_size = 256,
  intermediate_size = 688, num_hidden_layers = 4, num_attention_heads = 4, num_key_value_heads = 4,
  rms_norm_eps = 1e-5, rope_theta = 10000, max_position_embeddings = 1024, bos_token_id = 256,
  eos_token_id = 257, tie_word_embeddings = false, torch_dtype = "float32"}

local chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] " ..
  "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

-- GPT-2's byte-to-character map: printable bytes stand for themselves, the rest 256 + n.
local function byte_chars()
  local map, n = {}, 0
  for b = 0, 255 do
    if (b >= 33 and b <= 126) or (b >= 0xA1 and b <= 0xAC) or (b >= 0xAE and b <= 0xFF) then
      map[b] = utf8.char(b)
    else
      map[b] = utf8.char(256 + n)
      n = n + 1
    end
  end
  return map
end

-- A tokenizer.json whose ids 0-255 are the bytes (byte-level BPE without merges), then the two
-- chatml specials.
local function tokenizer_json()
  local vocab = {}
  for b, ch in pairs(byte_chars()) do vocab[ch] = b end
  return fb.json.encode({
    version = "1.0",
    added_tokens = {{id = 256, content = "<|im_start|>", special = true},
                    {id = 257, content = "<|im_end|>", special = true}},
    pre_tokenizer = {type = "ByteLevel", add_prefix_space = false, use_regex = true},
    decoder = {type = "ByteLevel"},
    model = {type = "BPE", vocab = vocab, merges = fb.json.array()}})
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local t = {}
  for l in p:lines() do t[#t + 1] = l end
  p:close()
  return t
end

-- Prose documents ("# Title" then paragraphs) as chat examples of at most `limit` bytes each.
local function prose_examples(path, limit, out)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  for title, body in text:gmatch("# ([^\n]+)\n(.-)%f[#\0]") do
    local chunk, part = {}, 1
    local function flush()
      if #chunk == 0 then return end
      local ask = part == 1 and title or (title .. " (continued)")
      out:write(fb.json.encode({messages = {{role = "user", content = ask},
                                            {role = "assistant", content = table.concat(chunk, "\n\n")}}}), "\n")
      chunk, part = {}, part + 1
    end
    local size = 0
    for para in body:gmatch("[^\n]+") do
      if size + #para > limit then flush(); size = 0 end
      chunk[#chunk + 1] = para
      size = size + #para + 2
    end
    flush()
  end
end

local function main()
  local opts, perr = parse(arg)
  if not opts then
    io.stderr:write("make-base-model: ", perr, "\n", USAGE)
    return 2
  end
  local tmp = os.tmpname()
  os.remove(tmp)
  local init = tmp .. "/init"
  assert(os.execute(string.format("mkdir -p %q", init)))
  write(init .. "/config.json", fb.json.encode(config))
  write(init .. "/tokenizer.json", tokenizer_json())
  write(init .. "/tokenizer_config.json", fb.json.encode({chat_template = chatml, eos_token = "<|im_end|>",
                                                          bos_token = "<|im_start|>", model_max_length = 1024}))
  assert(lm.init(init, opts.seed, 0.02))

  local data = {tmp .. "/prose.jsonl"}
  local prose = assert(io.open(data[1], "wb"))
  for _, path in ipairs(lines(string.format("ls %q/share/corpus/*.txt", fb.root))) do
    prose_examples(path, 700, prose)
  end
  prose:close()
  for _, cmd in ipairs({"ls %q/share/corpus/*.jsonl", "ls %q/share/skills/*/data.jsonl"}) do
    for _, path in ipairs(lines(string.format(cmd, fb.root))) do data[#data + 1] = path end
  end

  local started = fb.now()
  local summary, err, where = fb.train.run({
    model = init, data = data, out = opts.out, mode = "full", max_steps = opts.steps, lr = opts.lr,
    micro_batch = opts.micro_batch, max_len = opts.max_len, warmup = 0.03, schedule = "cosine",
    weight_decay = 0.01, eval = {fraction = 0.02, interval = 100}, seed = opts.seed,
    samples = {prompts = {"My kitchen sink is dripping, what should I do?"}, interval = 250, max_tokens = 80},
    checkpoints = tmp .. "/checkpoints"}, {
    on_progress = function(ev)
      if ev.step % 25 == 0 or ev.step == ev.total_steps then
        print(string.format("step %d/%d loss %.4f (smoothed %.4f) lr %.2e %.0f tok/s eta %ds", ev.step,
          ev.total_steps, ev.loss, ev.loss_smoothed, ev.lr, ev.tokens_per_s, math.floor(ev.eta_s)))
      end
    end,
    on_eval = function(ev) print(string.format("step %d eval loss %.4f", ev.step, ev.eval_loss)) end,
    on_sample = function(ev) print(string.format("step %d sample: %s", ev.step, ev.text)) end})
  os.execute(string.format("rm -rf %q", tmp))
  if not summary then
    io.stderr:write("make-base-model: ", tostring(where), ": ", tostring(err), "\n")
    return 1
  end
  print(string.format("done in %.0f s: %d steps, final loss %.4f, eval loss %s; model in %s",
    (fb.now() - started) / 1000, summary.steps, summary.final_loss, tostring(summary.eval_loss), opts.out))
  return 0
end

fb.exit(main())
