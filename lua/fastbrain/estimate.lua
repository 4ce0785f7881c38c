-- fastbrain.estimate: what a training run costs before it starts, on this machine: its examples
-- and tokens per epoch (the model's own tokenizer and template), steps, peak memory and time on
-- the CPU and, when one is usable, the GPU, and whether it fits in the memory free now.
--
-- Time and memory come from a calibration per model shape, measured once and cached: a random
-- model of the shape with 1 and then 3 layers trains a few steps at two sequence lengths, each
-- run in a child process (scripts/calibrate.lua) so that its peak memory is its own. Both grow
-- linearly in the layers and in the tokens of a micro-batch (attention works in blocks, never
-- holding a T x T matrix), so the four points extrapolate to the real model and batch.
--   run(spec [, {calibrate = true, data =}]) -> estimate | nil, err, where
--     calibrate = false uses a cached calibration only (none: estimate.cpu is nil); data is
--     spec's as fastbrain.train.prepare made it, when the caller has it
--   check(spec, data) -> true | nil, message: the trainer's fit check before a CPU run
--   main(spec_json, opts) -> exit status (`fastbrain train --estimate [--json] [--no-calibrate]`;
--     opts.calibrate = false for --no-calibrate)
-- The cache is $FASTBRAIN_CACHE, else $XDG_CACHE_HOME/fastbrain, else ~/.cache/fastbrain.
local fb = require "fastbrain"
local lm = require "fastbrain.model.core"
local model = require "fastbrain.model"
local process = require "fastbrain.process"
local train = require "fastbrain.train"
local trainer = require "fastbrain.train.core"
local json = fb.json

local M = {
  LAYERS = {1, 3},      -- the calibration models' depths
  STEPS = 5,            -- optimizer steps each calibration run times (the first warms up)
  DECODE_TOKENS = 8,    -- tokens each calibration run generates
  HOURS_WARNING = 3600, -- a run longer than this says so
}

local GIB = 2 ^ 30

function M.cache_dir()
  local dir = os.getenv("FASTBRAIN_CACHE")
  if dir and dir ~= "" then return dir end
  local xdg = os.getenv("XDG_CACHE_HOME")
  return (xdg and xdg ~= "" and xdg or (os.getenv("HOME") or "/tmp") .. "/.cache") .. "/fastbrain"
end

-- ---- the data ----------------------------------------------------------------------------

-- The tokens a micro-batch holds, padded to its longest example, averaged over shuffles.
local function mean_padded(lengths, batch)
  if #lengths == 0 then return 0 end
  local rounds, total, order = 8, 0, {}
  for i = 1, #lengths do order[i] = lengths[i] end
  local state = 7
  for _ = 1, rounds do
    for i = #order, 2, -1 do -- Fisher-Yates with a fixed LCG: the same answer every time
      state = (state * 1103515245 + 12345) % 2147483648
      local j = state % i + 1
      order[i], order[j] = order[j], order[i]
    end
    local batches, padded = 0, 0
    for first = 1, #order, batch do
      local longest, n = 0, 0
      for k = first, math.min(first + batch - 1, #order) do
        longest, n = math.max(longest, order[k]), n + 1
      end
      padded, batches = padded + longest * n, batches + 1
    end
    total = total + padded / batches
  end
  return total / rounds
end

local function lengths_of(examples)
  local lengths, tokens, trained, longest = {}, 0, 0, 0
  for i, ex in ipairs(examples) do
    lengths[i] = #ex.ids
    tokens = tokens + #ex.ids
    longest = math.max(longest, #ex.ids)
    for _, label in ipairs(ex.labels) do
      if label >= 0 then trained = trained + 1 end
    end
  end
  return lengths, tokens, trained, longest
end

-- ---- calibration -------------------------------------------------------------------------

-- The micro-batch lengths a calibration measures at: around the data's padded length, as
-- powers of two so that skills of similar data share one.
local function calibration_lengths(padded, max_len)
  local t = 32
  while t < padded and t < 256 do t = t * 2 end
  t = math.min(t, max_len)
  return math.max(8, t // 2), t
end

-- What a calibration depends on: the shape of one layer and of the embeddings, the LoRA, the
-- batch, the device and the engine. Another model of the same shape shares it.
local function calibration_key(config, spec, device, lengths)
  return {
    version = fb.version, device = device, architecture = config.architectures and config.architectures[1],
    hidden = config.hidden_size, intermediate = config.intermediate_size, vocab = config.vocab_size,
    heads = config.num_attention_heads, kv_heads = config.num_key_value_heads or config.num_attention_heads,
    head_dim = config.head_dim, tied = config.tie_word_embeddings or false, bias = config.attention_bias,
    mode = spec.mode or "lora",
    lora = spec.mode ~= "full" and {r = spec.lora.r, targets = spec.lora.targets,
                                    dropout = spec.lora.dropout > 0} or nil,
    micro_batch = spec.micro_batch, tokens = lengths,
    layers = M.LAYERS,  -- a calibration measured at other depths cannot be read at these
  }
end

-- FNV-1a (32 bits) of s, as 8 hex digits: a calibration's file name.
local function fnv(s)
  local h = 2166136261
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff end
  return ("%08x"):format(h)
end

local EXE = process.exepath()

local function quoted(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- One calibration run in a child process -> {step_s, peak_bytes, decode_s, ...} | nil, err.
-- It blocks: the estimate is a command of its own (the server runs it as a child too).
local function measure(dir, device, spec, tokens)
  local job = json.encode{model = dir, device = device, micro_batch = spec.micro_batch, tokens = tokens,
                          steps = M.STEPS, decode_tokens = M.DECODE_TOKENS, lora = spec.lora,
                          mode = spec.mode}
  local errors = dir .. "/calibrate.err"
  local child = io.popen(("%s --log-level warn run %s %s 2>%s"):format(quoted(EXE),
    quoted(fb.root .. "/scripts/calibrate.lua"), quoted(job), quoted(errors)))
  local out = child:read("a")
  local done = child:close()
  if not done then
    local last = (fb.fs.read(errors) or ""):match("([^\n]*)\n*$")
    return nil, ("calibration on the %s failed: %s"):format(device, last ~= "" and last or "no message")
  end
  local ok, point = pcall(json.decode, out:match("[^\n]+") or "")
  if not ok or type(point) ~= "table" then return nil, "calibration printed no result" end
  return point
end

-- Calibrate the shape of config on device: {points = {{layers, tokens, step_s, peak_bytes,
-- decode_s}...}, device_name, seconds} | nil, err.
local function calibrate(config, spec, device, lengths, scratch)
  local started, points, device_name = fb.now(), {}, nil
  for _, layers in ipairs(M.LAYERS) do
    local dir = ("%s/%d-layers"):format(scratch, layers)
    local shape = {}
    for k, v in pairs(config) do shape[k] = v end
    shape.num_hidden_layers = layers
    local ok, err = fb.fs.mkdir_p(dir)
    if ok then ok, err = fb.fs.write_atomic(dir .. "/config.json", json.encode(shape)) end
    if ok then ok, err = lm.init(dir, 1, 0.02) end
    if not ok then return nil, err end
    for _, tokens in ipairs(lengths) do
      local p, merr = measure(dir, device, spec, tokens)
      if not p then return nil, merr end
      p.layers, p.tokens, device_name = layers, tokens, p.device_name
      points[#points + 1] = p
    end
    fb.fs.remove_tree(dir)
  end
  return {points = points, device_name = device_name, seconds = (fb.now() - started) / 1000}
end

-- The cached calibration for key, else a new one (calibrate = true) -> calibration, cached |
-- nil (none cached and not asked to measure) | nil, err.
local function calibration(config, spec, device, lengths, calibrate_now)
  local key = calibration_key(config, spec, device, lengths)
  local key_json = json.encode(key)
  local path = ("%s/calibration/%s-%s.json"):format(M.cache_dir(), device, fnv(key_json))
  local text = fb.fs.read(path)
  local ok, cached = pcall(json.decode, text or "")
  if ok and type(cached) == "table" and json.encode(cached.key) == key_json then return cached, true end
  if not calibrate_now then return nil end
  -- Scratch of this process's own (a unique name, like the file tmpname makes): another may be
  -- measuring the same shape.
  local unique = os.tmpname()
  os.remove(unique)
  local scratch = ("%s/calibration/%s-%s.%s.partial"):format(M.cache_dir(), device, fnv(key_json),
                                                             unique:match("[^/]+$"))
  local c, err = calibrate(config, spec, device, lengths, scratch)
  fb.fs.remove_tree(scratch)
  if not c then return nil, err end
  c.key, c.measured_at = key, os.date("!%Y-%m-%dT%H:%M:%SZ")
  local wok, werr = fb.fs.mkdir_p(M.cache_dir() .. "/calibration")
  if wok then wok, werr = fb.fs.write_atomic(path, json.encode(c)) end
  if not wok then return nil, werr end
  return c, false
end

-- The value at x of the line through (x1, y1) and (x2, y2), never falling below y1 when x grows:
-- a cost that measured lower with more work is noise, not a saving.
local function extend(x1, y1, x2, y2, x)
  local slope = math.max(0, (y2 - y1) / (x2 - x1))
  return y1 + slope * (x - x1)
end

-- A measured quantity at `layers` layers and a micro-batch of `tokens` tokens (per example).
local function at(points, field, layers, tokens)
  local by_layers = {}
  for _, p in ipairs(points) do
    by_layers[p.layers] = by_layers[p.layers] or {}
    table.insert(by_layers[p.layers], p)
  end
  local per_layer = {}
  for i, l in ipairs(M.LAYERS) do
    local a, b = by_layers[l][1], by_layers[l][2]
    per_layer[i] = extend(a.tokens, a[field], b.tokens, b[field], tokens)
  end
  return extend(M.LAYERS[1], per_layer[1], M.LAYERS[2], per_layer[2], layers)
end

-- ---- free memory ---------------------------------------------------------------------------

-- A number in a /proc or /sys file (their sizes read 0, so not fb.fs.read).
local function read_number(path, pattern)
  local f = io.open(path)
  local text = f and f:read("a")
  if f then f:close() end
  return text and tonumber(text:match(pattern))
end

-- The memory cgroup files of this process and of each cgroup above it: {limit, usage} paths,
-- for cgroup v2 (memory.max, memory.current) or v1's memory hierarchy.
local function cgroup_files()
  local f = io.open("/proc/self/cgroup")
  local text = f and f:read("a") or ""
  if f then f:close() end
  local v1 = text:match("%d+:[^:\n]*memory[^:\n]*:(%S*)")
  local root, path, limit, usage = "/sys/fs/cgroup", text:match("0::(%S*)"), "memory.max", "memory.current"
  if v1 then
    root, path, limit, usage = "/sys/fs/cgroup/memory", v1, "memory.limit_in_bytes", "memory.usage_in_bytes"
  end
  local files = {}
  while path do
    local dir = root .. (path == "/" and "" or path)
    files[#files + 1] = {dir .. "/" .. limit, dir .. "/" .. usage}
    path = path ~= "/" and path ~= "" and (path:match("^(.*)/[^/]*$") or "") or nil
    if path == "" then path = "/" end
  end
  return files
end

-- The memory a new process may take now: MemAvailable, within the limit of each memory cgroup
-- this process is in.
function M.free_bytes()
  local free = (read_number("/proc/meminfo", "MemAvailable:%s*(%d+) kB") or 0) * 1024
  for _, f in ipairs(cgroup_files()) do
    local limit, used = read_number(f[1], "^(%d+)"), read_number(f[2], "^(%d+)")
    if limit and used then free = math.min(free, math.max(0, limit - used)) end
  end
  return free
end

-- ---- the estimate --------------------------------------------------------------------------

-- Everything about the data and the plan, without a calibration. data and parsed: spec's
-- prepared data and its trainer.spec, when the caller has them already.
local function plan_run(spec, data, parsed)
  local name = spec.model
  local full = train.merge(train.defaults(name), spec)
  local err, where
  if not data then data, err, where = train.prepare(full) end
  if not data then return nil, err, where end
  if #data.train == 0 then return nil, "no training examples", "spec.data" end
  full.max_len = data.max_len
  local dir = assert(model.locate(name))
  local config = model.read_json(dir .. "/config.json")
  local plan = trainer.plan(parsed or trainer.spec(json.encode(full)), #data.train)
  local lengths, tokens, trained, longest = lengths_of(data.train)
  local eval_lengths, eval_tokens = lengths_of(data.eval)
  return {spec = full, config = config, data = data, plan = plan, lengths = lengths,
          eval_lengths = eval_lengths, tokens = tokens, trained = trained, longest = longest,
          eval_tokens = eval_tokens}
end

-- A device's costs from its calibration: {seconds, peak_bytes, step_s, ...}.
local function costs(r, c)
  local layers, plan, B = r.config.num_hidden_layers, r.plan, r.plan.micro_batch
  local padded = mean_padded(r.lengths, B) / B          -- per example of a micro-batch
  local micro_batches = plan.examples / B
  local step_s = at(c.points, "step_s", layers, padded) * plan.grad_accum
  local train_s = micro_batches * at(c.points, "step_s", layers, padded)
  -- An evaluation is forward passes only: a third of a training step's work, per token.
  local eval_s, evals = 0, 0
  if #r.eval_lengths > 0 then
    -- every interval, at the end, and the base model's before the first step
    evals = plan.steps // plan.eval_interval + (plan.steps % plan.eval_interval ~= 0 and 1 or 0) + 1
    local eval_padded = mean_padded(r.eval_lengths, B) / B
    eval_s = evals * (#r.eval_lengths / B) * at(c.points, "step_s", layers, eval_padded) / 3
  end
  local prompts = #r.data.prompts
  local rounds = plan.steps // plan.sample_interval + (plan.steps % plan.sample_interval ~= 0 and 1 or 0)
  local sample_s = prompts * rounds * r.spec.samples.max_tokens * at(c.points, "decode_s", layers, padded)
  return {
    device_name = c.device_name,
    peak_bytes = math.floor(at(c.points, "peak_bytes", layers, r.longest)),
    seconds = train_s + eval_s + sample_s,
    step_s = step_s, train_s = train_s, eval_s = eval_s, sample_s = sample_s, evals = evals,
    calibration = {measured_at = c.measured_at, seconds = c.seconds},
  }
end

local function hours_text(s)
  if s >= 3600 then return ("%.1f h"):format(s / 3600) end
  if s >= 60 then return ("%d min"):format(math.floor(s / 60 + 0.5)) end
  return ("%d s"):format(math.floor(s + 0.5))
end

local function gib(bytes) return ("%.1f GiB"):format(bytes / GIB) end

-- What a device's costs mean for the person about to start: the warnings.
local function verdicts(e, name, d)
  if d.free_bytes and d.peak_bytes > d.free_bytes then
    d.fits = false
    e.warnings[#e.warnings + 1] = ("this run needs about %s at its peak on the %s and %s is free: lower " ..
      "micro_batch (%d) or max_len (%d), or pick a smaller model"):format(gib(d.peak_bytes), name,
      gib(d.free_bytes), e.micro_batch, e.max_len)
  elseif d.free_bytes then
    d.fits = true
  end
  if d.seconds > M.HOURS_WARNING then
    e.warnings[#e.warnings + 1] = ("this run takes about %s on the %s"):format(hours_text(d.seconds), name)
  end
end

function M.run(spec, opts)
  opts = opts or {}
  local calibrate_now = opts.calibrate ~= false
  local r, err, where = plan_run(spec, opts.data, opts.parsed)
  if not r then return nil, err, where end
  local B = r.plan.micro_batch
  local e = {
    model = spec.model, examples = #r.data.train, eval_examples = #r.data.eval,
    tokens_per_epoch = r.tokens, trained_tokens_per_epoch = r.trained, longest = r.longest,
    steps = r.plan.steps, epochs = r.plan.epochs, micro_batch = B, grad_accum = r.plan.grad_accum,
    max_len = r.spec.max_len, warnings = json.array(),
  }
  local lengths = {calibration_lengths(mean_padded(r.lengths, B) / B, r.spec.max_len)}
  local cspec = {micro_batch = B, lora = r.spec.lora, mode = r.spec.mode}
  local devices = {{"cpu", "CPU"}}
  if r.spec.device ~= "cpu" then
    local ok, why = lm.device("cuda")
    if ok then devices[2] = {"cuda", "GPU"} else e.gpu_note = why end
  end
  for _, d in ipairs(devices) do
    local c, cached_or_err = calibration(r.config, cspec, d[1], lengths, calibrate_now)
    if c then
      local cost = costs(r, c)
      cost.calibration.cached = cached_or_err
      if d[1] == "cpu" then cost.free_bytes = M.free_bytes() end
      e[d[1] == "cpu" and "cpu" or "gpu"] = cost
      verdicts(e, d[2], cost)
    elseif cached_or_err then
      return nil, cached_or_err, "calibration"
    end
  end
  return e
end

-- The trainer's check before a run on the CPU, with a cached calibration only (measuring takes
-- longer than a small run): nil and the message when the run would not fit in free memory. A
-- GPU run needs none: its allocations fail at once, before the first step, when it does not fit.
-- data and parsed: the run's own (fastbrain.train's).
function M.check(spec, data, parsed)
  if spec.device ~= "cpu" and lm.device("cuda") then return true end
  local e = M.run(spec, {calibrate = false, data = data, parsed = parsed})
  if e and e.cpu and e.cpu.fits == false then return nil, e.warnings[1] end
  return true
end

-- ---- fastbrain train --estimate ------------------------------------------------------------

local function show(e)
  local out = {}
  local function line(fmt, ...) out[#out + 1] = fmt:format(...) end
  line("%s: %d examples (%d held out), %d tokens an epoch (%d of them answers), the longest %d",
       e.model, e.examples, e.eval_examples, e.tokens_per_epoch, e.trained_tokens_per_epoch, e.longest)
  line("%d steps (%.3g epochs) of %d x %d examples, max_len %d", e.steps, e.epochs, e.micro_batch,
       e.grad_accum, e.max_len)
  for _, d in ipairs{{"cpu", "CPU"}, {"gpu", "GPU"}} do
    local c = e[d[1]]
    if c then
      line("%s (%s): about %s, %s at its peak%s", d[2], c.device_name, hours_text(c.seconds), gib(c.peak_bytes),
           c.free_bytes and (" of %s free"):format(gib(c.free_bytes)) or "")
    end
  end
  if not e.cpu then line("CPU: this model's shape is not calibrated yet (an estimate without --no-calibrate measures it)") end
  if e.gpu_note then line("GPU: none (%s)", e.gpu_note) end
  for _, w in ipairs(e.warnings) do line("warning: %s", w) end
  return table.concat(out, "\n") .. "\n"
end

-- The body of `fastbrain train --estimate`: 0, or 1 with the error.
function M.main(spec_json, opts)
  local ok, e, err, where = pcall(M.run, json.decode(spec_json), {calibrate = opts.calibrate})
  if not ok then e, err = nil, tostring(e) end
  if not e then
    local named = where and err:sub(1, #where) ~= where -- a dataset's errors start with its path
    io.stderr:write("fastbrain train --estimate: ", named and (where .. ": ") or "", err, "\n")
    return 1
  end
  io.stdout:write(opts.json and (json.encode(e) .. "\n") or show(e))
  return 0
end

return M
