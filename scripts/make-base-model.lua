-- make-base-model.lua: the recipe of the bundled base model share/models/tiny. Its byte-level BPE
-- tokenizer is learnt (scripts/train-tokenizer.py), then a small Llama (chatml template) starts
-- from random weights and is trained in full-parameter mode by fastbrain's own trainer, both on
-- the general corpus the project ships: share/corpus/*.txt (prose, each document cut into chunks
-- and framed as a chat answer) and share/corpus/*.jsonl (dialogues). The bundled skills' data is
-- kept out, so that what a skill's LoRA adapter adds shows against the base model.
--   fastbrain run scripts/make-base-model.lua --out share/models/tiny [--steps N] [--seed S]
local fb = require "fastbrain"
local args = require "fastbrain.args"
local duration = require "fastbrain.duration"
local lm = require "fastbrain.model.core"

local USAGE = "usage: fastbrain run scripts/make-base-model.lua --out DIR [--steps N --seed S --lr X " ..
  "--micro-batch N --max-len N]\n"

local function parse(argv)
  local opts, err, help = args.parse(argv, {
    options = {out = "string", steps = "number", seed = "number", lr = "number", micro_batch = "number",
               max_len = "number"},
    defaults = {steps = 3000, seed = 1234, lr = 2e-3, micro_batch = 4, max_len = 1024}, usage = USAGE})
  if not opts then return nil, err, help end
  if not opts.out then return nil, "--out DIR is required\n" .. USAGE end
  return opts
end

-- Learnt tokens before the two chatml specials (ids VOCAB and VOCAB + 1).
local VOCAB = 2048

local config = {
  architectures = {"LlamaForCausalLM"}, model_type = "llama", vocab_size = VOCAB + 2, hidden_size = 256,
  intermediate_size = 688, num_hidden_layers = 4, num_attention_heads = 4, num_key_value_heads = 4,
  rms_norm_eps = 1e-5, rope_theta = 10000, max_position_embeddings = 1024, bos_token_id = VOCAB,
  eos_token_id = VOCAB + 1, tie_word_embeddings = false, torch_dtype = "float32"}

local chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] " ..
  "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

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
  io.stdout:setvbuf("line")  -- progress shows as it comes when the output goes to a file
  local opts, perr, help = parse(arg)
  if not opts then return args.report(perr, help, "make-base-model") end
  local tmp = os.tmpname()
  os.remove(tmp)
  local init = tmp .. "/init"
  assert(os.execute(string.format("mkdir -p %q", init)))
  write(init .. "/config.json", fb.json.encode(config))
  local texts = lines(string.format("ls %q/share/corpus/*.txt", fb.root))
  local chats = lines(string.format("ls %q/share/corpus/*.jsonl", fb.root))
  local quoted = {}
  for _, list in ipairs({texts, chats}) do
    for _, path in ipairs(list) do quoted[#quoted + 1] = string.format("%q", path) end
  end
  assert(os.execute(string.format("python3 %q/scripts/train-tokenizer.py --vocab %d --out %q %s", fb.root, VOCAB,
    init .. "/tokenizer.json", table.concat(quoted, " "))), "train-tokenizer.py failed")
  write(init .. "/tokenizer_config.json", fb.json.encode({chat_template = chatml, eos_token = "<|im_end|>",
                                                          bos_token = "<|im_start|>", model_max_length = 1024}))
  assert(lm.init(init, opts.seed, 0.02))

  -- one data file (a spec takes a few): the prose as chats, then the dialogues
  local data = tmp .. "/corpus.jsonl"
  local corpus = assert(io.open(data, "wb"))
  for _, path in ipairs(texts) do prose_examples(path, 700, corpus) end
  for _, path in ipairs(chats) do corpus:write(assert(fb.fs.read(path))) end
  corpus:close()

  local started = fb.now()
  local summary, err, where = fb.train.run({
    model = init, data = data, out = opts.out, mode = "full", max_steps = opts.steps, lr = opts.lr,
    micro_batch = opts.micro_batch, max_len = opts.max_len, warmup = 0.03, schedule = "cosine",
    weight_decay = 0.01, eval = {fraction = 0.02, interval = 100}, patience = 3, seed = opts.seed,
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
  print(string.format("done in %s: %d steps, training loss %.4f, held-out loss %s; model in %s",
    duration.text((fb.now() - started) / 1000), summary.steps, summary.final_loss_smoothed,
    tostring(summary.eval_loss), opts.out))
  return 0
end

fb.exit(main())
