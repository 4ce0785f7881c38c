-- calibrate.lua: one measurement for fastbrain.estimate, in a process of its own so that the
-- peak memory it reports is this run's alone. It trains `steps` optimizer steps of
-- `micro_batch` random sequences of `tokens` tokens on the model in `model` (random weights of
-- the shape being measured), then generates `decode_tokens` tokens, and prints one JSON line:
--   {step_s, peak_bytes, decode_s, device, device_name}
-- step_s is the median of the steps after the first (which warms caches up), decode_s the
-- seconds per generated token.
--   fastbrain run scripts/calibrate.lua '{"model": DIR, "device": "cpu", "micro_batch": 1,
--     "tokens": 64, "steps": 3, "decode_tokens": 8, "lora": {...}, "mode": "lora"}'
local fb = require "fastbrain"
local lm = require "fastbrain.model.core"
local trainer = require "fastbrain.train.core"
local json = fb.json

if not arg[1] then
  io.stderr:write("usage: fastbrain run scripts/calibrate.lua JOB_JSON\n")
  os.exit(2)
end
local job = json.decode(arg[1])
local config = json.decode((assert(fb.fs.read(job.model .. "/config.json"))))
local vocab = config.vocab_size

-- Random tokens, every one a label: what a step costs does not depend on which tokens they are.
local function examples(n, len)
  local rng = {state = 12345}
  local function next_id()
    rng.state = (rng.state * 1103515245 + 12345) % 2147483648
    return rng.state % vocab
  end
  local out = {}
  for i = 1, n do
    local ids = {}
    for t = 1, len do ids[t] = next_id() end
    out[i] = {ids = ids, labels = ids, line = i}
  end
  return out
end

local spec = {model = job.model, out = job.model .. "/out", data = "random tokens", device = job.device, mode = job.mode,
              lora = job.lora, max_steps = job.steps, micro_batch = job.micro_batch, grad_accum = 1,
              max_len = job.tokens, small_data = false, checkpoint_interval = 0,
              eval = {fraction = 0}}
local elapsed, peak, device, device_name = {}, 0, nil, nil
local ok, err = trainer.run(trainer.spec(json.encode(spec)), {train = examples(job.micro_batch * job.steps, job.tokens)},
  function(line)
    local ev = json.decode(line)
    if ev.event == "progress" then elapsed[#elapsed + 1] = ev.elapsed_s end
    if ev.peak_memory_bytes then
      peak = math.max(peak, ev.peak_memory_bytes)
      device, device_name = ev.device, ev.device_name
    end
  end)
if not ok then
  io.stderr:write("calibrate: ", err, "\n")
  os.exit(1)
end
local steps = {}
for i = 2, #elapsed do steps[#steps + 1] = elapsed[i] - elapsed[i - 1] end
table.sort(steps)

local m = assert(lm.load(job.model, job.device))
local started = fb.now()
m:generate({1, 2, 3, 4}, {max_tokens = job.decode_tokens, stop = {}})
local decode_s = (fb.now() - started) / 1000 / job.decode_tokens

io.stdout:write(json.encode{step_s = steps[(#steps + 1) // 2], peak_bytes = peak, decode_s = decode_s,
                            device = device, device_name = device_name}, "\n")
