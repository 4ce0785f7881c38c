-- The worker for the browser tests: speaks docs/protocol.md like `fastbrain worker JOBDIR`,
-- slowly enough to watch (FB_WEB_STEP_MS, default 100 ms a step; spec.max_steps steps, default
-- 30) and with every event the dashboard shows: progress, eval, sample, log, done (writing the
-- adapter's summary.json so the adapters table lists it). A dataset containing "REJECT" fails
-- at step 3 with an error naming its line, as the real worker rejects a bad dataset. SIGTERM
-- writes a checkpoint (the last step) and exits 3; a resumed run continues after it.
local fb = require "fastbrain"
local json = fb.json

local dir = assert(arg[1], "usage: worker.lua JOBDIR")
local spec = json.decode(assert(fb.fs.read(dir .. "/spec.json")))
local steps = (spec.max_steps or 0) > 0 and spec.max_steps or 30
local interval = math.tointeger(tonumber(os.getenv("FB_WEB_STEP_MS") or "")) or 100
local prompts = spec.samples and spec.samples.prompts or {"Hello?"}

local bad_line
local n = 0
for line in (fb.fs.read(spec.data) or ""):gmatch("[^\n]+") do
  n = n + 1
  if line:find("REJECT", 1, true) then bad_line = bad_line or n end
end

local function emit(t)
  if not (io.stdout:write(json.encode(t), "\n") and io.stdout:flush()) then fb.exit(1) end
end

local ckpt = dir .. "/checkpoint"
local step = tonumber(fb.fs.read(ckpt) or "0") or 0
fb.on_signal("term", function()
  assert(fb.fs.write_atomic(ckpt, tostring(step)))
  emit{event = "checkpoint", step = step, path = ckpt}
  fb.exit(3)
end)

local function loss_at(s) return 2.5 * math.exp(-s / (steps / 3)) + 0.2 end

emit{event = "start", total_steps = steps, total_epochs = 3, examples = n, eval_examples = 2,
     device = "test-cpu", model = spec.model, resumed_from_step = step}
local started = fb.now()
fb.timer.every(interval, function(t)
  step = step + 1
  local eta = (steps - step) * interval / 1000
  emit{event = "progress", step = step, total_steps = steps, epoch = 3 * step / steps,
       total_epochs = 3, loss = loss_at(step), loss_smoothed = loss_at(step), lr = 2e-4,
       grad_norm = 1.0, tokens_per_s = 1234.5, elapsed_s = (fb.now() - started) / 1000, eta_s = eta}
  emit{event = "log", level = "info", message = ("step %d/%d loss %.3f"):format(step, steps, loss_at(step))}
  if bad_line and step == 3 then
    emit{event = "error", message = ("data.jsonl:%d: the answer is not a valid example"):format(bad_line),
         where = ("data.jsonl:%d"):format(bad_line)}
    t:stop()
    fb.exit(1)
    return
  end
  if step % 5 == 0 then emit{event = "eval", step = step, eval_loss = loss_at(step) + 0.15} end
  if step % 10 == 0 then
    emit{event = "sample", step = step, prompt = prompts[1], text = ("answer after %d steps"):format(step)}
  end
  if step >= steps then
    t:stop()
    local summary = {base_model = spec.model, examples = n, steps = steps, epochs = 3,
                     final_loss = loss_at(steps), eval_loss = loss_at(steps) + 0.15,
                     wall_time_s = (fb.now() - started) / 1000, tokens_per_s = 1234.5, device = "test-cpu"}
    assert(fb.fs.mkdir_p(spec.out))
    assert(fb.fs.write_atomic(spec.out .. "/summary.json", json.encode(summary)))
    emit{event = "done", adapter = spec.out, summary = summary}
    fb.exit(0)
  end
end)
