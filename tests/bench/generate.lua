-- generate.lua: `make bench-generate`: generation speed of fastbrain and of llama.cpp (npm's
-- node-llama-cpp, its prebuilt CPU binary, through tests/bench/generate_llama.mjs) on the same
-- model, the same prompt and the same number of threads, in one run. A benchmark, not a test.
--
-- Each model is exported to an f32 GGUF (fastbrain.export, as `fastbrain export --model DIR --to
-- gguf` writes it); a prompt of about 100 tokens (a system and a user message) is rendered with
-- the model's chat template and tokenized by fastbrain, and both sides start from those ids.
-- Both pick TOKENS tokens greedily, end tokens included (no stop tokens: every run makes the same
-- number), from an empty KV cache (f32 on both sides). Measured, wall clock:
--   time to first token: from the call with the prompt ids (fastbrain: lm:stream then the first
--     st:next(); llama.cpp: sequence.evaluate until its first token) to the first token id;
--   decode tokens/s: the TOKENS - 1 tokens after the first over the time from the first to the
--     last.
-- Tokenizing and detokenizing are outside both numbers. Rounds alternate between the two (ROUNDS
-- pairs, each a warm-up and REPS timed runs per side); each pair gives a speed ratio, and the
-- median ratio counts, so load from elsewhere skews both alike. Ratios are speeds: above 1 is
-- fastbrain ahead. Floor 0.8x on both (issue 16), goal above 1x.
--
-- Usage: OPENBLAS_NUM_THREADS=T OMP_NUM_THREADS=T \
--          fastbrain run tests/bench/generate.lua [--threads T] [--rounds R] [--reps K]
--          [--tokens N] [MODEL...]
-- MODEL: a directory or ORG/NAME in the Hugging Face cache (offline). Default: the bundled
-- share/models/tiny and, when the cache holds a supported model, its smallest (at most
-- BENCH_MAX_PARAMS parameters, default 2e9), else a synthetic 25M-parameter one (SYNTHETIC).
-- fastbrain's CPU matrix products run on OpenBLAS's or oneDNN's threads, which read
-- OPENBLAS_NUM_THREADS / OMP_NUM_THREADS at start-up: both must equal --threads (default:
-- OPENBLAS_NUM_THREADS), llama.cpp's `threads`.
-- Then the server's side (fastbrain.model_pool, as `fastbrain serve` answers): a 64-token answer
-- from a warm model process of the bundled model, timed from the request to its last token,
-- SERVED_RUNS times; bound 150 ms (issue 16). A server with its own HTTP is bench-http's.
-- Exit status: 0 when every floor is met, 1 when one is missed, 2 on a failure to run.
local fb = require "fastbrain"
local export = require "fastbrain.export"
local lm = require "fastbrain.model.core"
local model = require "fastbrain.model"
local models = require "fastbrain.models"
local process = require "fastbrain.process"

local FLOOR = 0.8
local SERVED_TOKENS, SERVED_RUNS, SERVED_BOUND_MS = 64, 15, 150

local SYSTEM = "You are the receptionist of a small family plumbing business in Leeds. Answer "
  .. "callers politely and briefly, ask for their name, address and a phone number, and never "
  .. "promise a price before a plumber has seen the job."
local PROMPT = "Hello, my kitchen sink has been leaking under the cabinet since this morning and "
  .. "the floor is getting wet. Can somebody come round today or tomorrow, and how much would "
  .. "a visit usually cost?"

-- A failure to run: main's caller prints msg without a traceback and exits 2.
local function fail(msg) error({msg = msg}, 0) end

local function median(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local function parse_args(args)
  local o = {threads = tonumber(os.getenv("OPENBLAS_NUM_THREADS") or "1"), rounds = 5, reps = 3,
             tokens = 128, models = {}}
  local i = 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    local key = ({["--threads"] = "threads", ["--rounds"] = "rounds", ["--reps"] = "reps",
                  ["--tokens"] = "tokens"})[a]
    if key then
      o[key] = math.tointeger(tonumber(v or ""))
      if not o[key] or o[key] < 1 then fail(a .. " needs a positive integer") end
      i = i + 2
    elseif a:sub(1, 2) == "--" then
      fail("unknown option " .. a)
    else
      o.models[#o.models + 1] = a
      i = i + 1
    end
  end
  if o.tokens < 2 then fail("--tokens must be at least 2") end
  return o
end

-- A model of a real one's proportions with random weights (std 0.02), for when the cache holds
-- none: Llama, hidden 512, 8 layers, 8 heads over 4 key/value heads, ffn 1376, the bundled
-- model's tokenizer and template: 25M parameters, 101 MB as f32, more than this machine's L3
-- cache, so decoding reads its weights from memory as a real model's does.
local SYNTHETIC = {architectures = {"LlamaForCausalLM"}, model_type = "llama", hidden_size = 512,
                   intermediate_size = 1376, num_hidden_layers = 8, num_attention_heads = 8,
                   num_key_value_heads = 4, vocab_size = 2050, max_position_embeddings = 1024,
                   rms_norm_eps = 1e-5, rope_theta = 10000, bos_token_id = 2048,
                   eos_token_id = 2049, tie_word_embeddings = false, torch_dtype = "float32"}

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

local function synthetic_model(tmp)
  local dir, tiny = tmp .. "/synthetic-25m", fb.root .. "/share/models/tiny"
  assert(fb.fs.mkdir_p(dir))
  write_file(dir .. "/config.json", fb.json.encode(SYNTHETIC))
  for _, f in ipairs{"tokenizer.json", "tokenizer_config.json"} do
    local src = assert(io.open(tiny .. "/" .. f, "rb"))
    write_file(dir .. "/" .. f, src:read("a"))
    src:close()
  end
  local ok, err = lm.init(dir, 1, 0.02)
  if not ok then fail("synthetic model: " .. err) end
  return dir
end

-- The bundled tiny model and the cache's smallest supported model or, when it has none, a
-- synthetic one.
local function default_models(tmp)
  local list = {fb.root .. "/share/models/tiny"}
  local cap = tonumber(os.getenv("BENCH_MAX_PARAMS") or "2e9")
  local best
  for _, e in ipairs(models.list()) do
    if e.source == "cache" and e.supported and e.parameters and e.parameters <= cap
      and (not best or e.parameters < best.parameters) then
      best = e
    end
  end
  if best then
    list[#list + 1] = best.id
  else
    print(("(no supported model of at most %.0e parameters in the Hugging Face cache: the "
      .. "bundled one and a synthetic one of random weights)"):format(cap))
    list[#list + 1] = synthetic_model(tmp)
  end
  return list
end

-- One fastbrain run: {ttft_ms, decode_ms, ids}.
local function fastbrain_once(lm, ids, n)
  local out = {}
  local t0 = fb.now()
  local st = assert(lm:stream(ids, {max_tokens = n}))
  out[1] = st:next()
  local t1 = fb.now()
  for i = 2, n do out[i] = st:next() end
  local t2 = fb.now()
  st:close()
  if #out ~= n then fail(("fastbrain made %d tokens, not %d"):format(#out, n)) end
  return {ttft_ms = t1 - t0, decode_ms = t2 - t1, ids = out}
end

local function fastbrain_round(lm, ids, o)
  fastbrain_once(lm, ids, o.tokens) -- warm-up
  local runs = {}
  for r = 1, o.reps do runs[r] = fastbrain_once(lm, ids, o.tokens) end
  return runs
end

local function llama_round(gguf, ids, o)
  local r, err = process.run{argv = {"node", fb.root .. "/tests/bench/generate_llama.mjs"},
    timeout_ms = 600000, stdin = fb.json.encode{model = gguf, prompt_ids = ids, tokens = o.tokens,
                                                 reps = o.reps, threads = o.threads}}
  if not r then fail("node: " .. tostring(err)) end
  local last = (r.stderr or ""):match("([^\n]*)\n*$")
  if r.code == 3 then fail(last .. " (make deps installs it)") end
  local ok, out = pcall(fb.json.decode, r.stdout or "")
  if r.code ~= 0 or not ok or type(out) ~= "table" then
    fail("llama.cpp failed on " .. gguf .. ": " .. (r.stderr ~= "" and r.stderr or "no message"))
  end
  return out
end

-- Medians of a round's runs: ttft ms, decode tokens/s.
local function summarize(runs, n)
  local ttft, tps = {}, {}
  for i, run in ipairs(runs) do
    ttft[i] = run.ttft_ms
    tps[i] = (n - 1) / (run.decode_ms / 1000)
  end
  return median(ttft), median(tps)
end

local function same_prefix(a, b)
  local n = 0
  while a[n + 1] ~= nil and a[n + 1] == b[n + 1] do n = n + 1 end
  return n
end

local function bench(name, o, tmp)
  local m <close>, err = model.load(name, {device = "cpu"})
  if not m then fail(name .. ": " .. err) end
  local info = m:info()
  local text, ids = m:render(PROMPT, {system = SYSTEM})
  if not text then fail(name .. ": " .. ids) end
  local gguf = tmp .. "/" .. (name:gsub("[^%w]+", "-")) .. ".gguf"
  local ok
  ok, err = export.gguf(nil, gguf, {base = m.dir, type = "f32"})
  if not ok then fail(name .. ": export: " .. err) end
  local shown = name:match("/synthetic%-25m$") and "synthetic-25m (random weights)"
    or name:sub(1, #fb.root + 1) == fb.root .. "/" and name:sub(#fb.root + 2) or name
  print(("\n== %s: %s, %d layers, hidden %d, %.1fM parameters (f32); prompt %d tokens (%s "
    .. "template), %d greedy tokens; %d thread%s; %d rounds x %d runs"):format(
    shown, info.architecture, info.num_hidden_layers, info.hidden_size, info.parameters / 1e6, #ids,
    m.template, o.tokens, o.threads, o.threads == 1 and "" or "s", o.rounds, o.reps))
  print(("%-6s %12s %14s   %12s %14s   %9s %9s"):format("round", "fb ttft ms", "fb decode t/s",
    "llama ttft ms", "llama dec t/s", "ttft x", "decode x"))
  local all = {fb_ttft = {}, fb_tps = {}, ll_ttft = {}, ll_tps = {}, r_ttft = {}, r_tps = {}}
  local version, threads_used, agree = "?", "?", o.tokens
  for r = 1, o.rounds do
    local fruns = fastbrain_round(m.lm, ids, o)
    local lout = llama_round(gguf, ids, o)
    version, threads_used = lout.llama_cpp, lout.threads
    local ft, fs = summarize(fruns, o.tokens)
    local lt, ls = summarize(lout.runs, o.tokens)
    for _, run in ipairs(lout.runs) do
      agree = math.min(agree, same_prefix(fruns[1].ids, run.ids))
    end
    local rt, rs = lt / ft, fs / ls
    print(("%-6d %12.3f %14.0f   %12.3f %14.0f   %8.2fx %8.2fx"):format(r, ft, fs, lt, ls, rt, rs))
    all.fb_ttft[r], all.fb_tps[r], all.ll_ttft[r], all.ll_tps[r] = ft, fs, lt, ls
    all.r_ttft[r], all.r_tps[r] = rt, rs
  end
  local rt, rs = median(all.r_ttft), median(all.r_tps)
  print(("medians over %d rounds:"):format(o.rounds))
  print(("%-22s %14s %18s   %22s   %s"):format("", "fastbrain", "llama.cpp " .. version,
    "fastbrain/llama.cpp", "floor " .. FLOOR .. "x"))
  local function row(what, f, l, ratio, unit)
    print(("%-22s %11.3f %-2s %15.3f %-2s   %20.2fx   %s"):format(what, f, unit, l, unit, ratio,
      ratio >= FLOOR and (ratio >= 1 and "met, ahead" or "met, behind") or "MISSED"))
  end
  row("time to first token", median(all.fb_ttft), median(all.ll_ttft), rt, "ms")
  row("decode tokens/s", median(all.fb_tps), median(all.ll_tps), rs, "")
  print(("(ttft ratio = llama.cpp's time / fastbrain's; decode ratio = fastbrain's tokens/s / "
    .. "llama.cpp's)"))
  print(("threads: fastbrain's CPU gemm %s with OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s; "
    .. "llama.cpp threads %s"):format(info.cpu_gemm or "?", os.getenv("OPENBLAS_NUM_THREADS"),
    os.getenv("OMP_NUM_THREADS"), tostring(threads_used)))
  print(("same greedy tokens: %d of %d in every run"):format(agree, o.tokens))
  return rt >= FLOOR and rs >= FLOOR
end

-- A warm model process's 64-token answers: median ms from the request to the done event, in the
-- process (request received to last token) and here (submit to done: the IPC included).
local function served(name)
  local pool = require("fastbrain.model_pool").new()
  local messages = {{role = "system", content = SYSTEM}, {role = "user", content = PROMPT}}
  local opts = {max_tokens = SERVED_TOKENS, ignore_eos = true, temperature = 0}
  local inside, outside = {}, {}
  for run = 0, SERVED_RUNS do  -- run 0 starts the process and warms it
    local t0 = fb.now()
    local text, done = assert(pool:submit(name, messages, opts)):wait()
    if not text then fail("the model process: " .. done.message) end
    if done.completion_tokens ~= SERVED_TOKENS then fail("the model process answered " .. done.completion_tokens .. " tokens") end
    if run > 0 then inside[#inside + 1], outside[#outside + 1] = done.ms, fb.now() - t0 end
  end
  pool:close()
  local ms = median(outside)
  print(("\n== the server's model process (%s), warm: a %d-token answer, median of %d"):format(name, SERVED_TOKENS, SERVED_RUNS))
  print(("in the process %.1f ms; request to last token %.1f ms; bound %d ms: %s"):format(
    median(inside), ms, SERVED_BOUND_MS, ms <= SERVED_BOUND_MS and "met" or "MISSED"))
  return ms <= SERVED_BOUND_MS
end

local function main(args)
  local o = parse_args(args)
  for _, var in ipairs{"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"} do
    if tonumber(os.getenv(var) or "") ~= o.threads then
      fail(("%s=%s, not --threads %d: fastbrain's BLAS threads must equal llama.cpp's (set it "
        .. "before the process starts, as `make bench-generate` does)"):format(var,
        tostring(os.getenv(var)), o.threads))
    end
  end
  local tmp = os.tmpname()
  os.remove(tmp)
  assert(fb.fs.mkdir_p(tmp))
  local _ <close> = setmetatable({}, {__close = function() fb.fs.remove_tree(tmp) end})
  if #o.models == 0 then o.models = default_models(tmp) end
  local ok = true
  for _, name in ipairs(o.models) do ok = bench(name, o, tmp) and ok end
  ok = served(fb.root .. "/share/models/tiny") and ok
  print(ok and "\nfloors met" or "\nFLOOR MISSED")
  return ok and 0 or 1
end

fb.spawn(function()
  local ok, status = xpcall(main, debug.traceback, arg)
  if not ok then
    local msg = type(status) == "table" and status.msg or tostring(status)
    io.stderr:write("bench-generate: ", msg, "\n")
    status = 2
  end
  fb.exit(status)
end)
