-- A stand-in for `fastbrain worker JOBDIR` in the job registry's tests: reads JOBDIR/spec.json
-- and speaks docs/protocol.md on the schedule the spec asks for. Spec fields (all optional):
--   steps (3), interval_ms (10): progress lines, one per interval, then done (exit 0)
--   mode: "done" | "crash" (error event, exit 1) | "hang" (start, then silence)
--         | "ignore_term" (SIGTERM does nothing) | "chunky" (a split line, a 2 MiB line, done)
--         | "grandchild" (done, leaving a process that holds stdout open)
--         | "grow" (a progress line and 8 MiB more memory every interval, until killed)
--   stderr: a line written to stderr before the start line
--   checkpoint_every: a checkpoint every N steps too (a run SIGKILLed resumes from it)
-- Each line goes to JOBDIR/worker.jsonl before stdout. SIGTERM writes a checkpoint and exits 3. JOBDIR/checkpoint holds the last step, so a resumed
-- run continues after it. Each run appends its pid to JOBDIR/../../workers.txt.
local fb = require "fastbrain"
local json = fb.json

local dir = assert(arg[1], "usage: worker.lua JOBDIR")
local spec = json.decode(assert(io.open(dir .. "/spec.json")):read("a"))
local steps, interval, mode = spec.steps or 3, spec.interval_ms or 10, spec.mode or "done"

local pids = assert(io.open(dir .. "/../../workers.txt", "a"))
pids:write(assert(io.open("/proc/self/stat")):read("n"), "\n")  -- its first field is our pid
pids:close()

-- Like `fastbrain worker`, each line goes to JOBDIR/worker.jsonl first (docs/protocol.md).
local record = assert(io.open(dir .. "/worker.jsonl", "a"))
local function emit(t)
  local line = json.encode(t)
  record:write(line, "\n")
  record:flush()
  local ok = io.stdout:write(line, "\n") and io.stdout:flush()
  if not ok then fb.exit(1) end  -- the registry is gone
end

local function read_checkpoint()
  local f = io.open(dir .. "/checkpoint")
  if not f then return 0 end
  local step = f:read("n")
  f:close()
  return step or 0
end

local step = read_checkpoint()
local function checkpoint()
  local f = assert(io.open(dir .. "/checkpoint", "w"))
  f:write(tostring(step))
  f:close()
  emit{event = "checkpoint", step = step, path = dir .. "/checkpoint"}
end

fb.on_signal("term", function()
  if mode == "ignore_term" then return end
  checkpoint()
  fb.exit(3)
end)

if spec.stderr then io.stderr:write(spec.stderr, "\n") end  -- before start: a test kills on start
emit{event = "start", total_steps = steps, total_epochs = 1, examples = 4, eval_examples = 0,
     device = "test", model = "none", resumed_from_step = step}
if mode == "grandchild" then  -- done, leaving a child that holds stdout open for 5 s
  os.execute("sleep 5 &")
  emit{event = "done", adapter = dir .. "/adapter", summary = {}}
  fb.exit(0)
  return
end
if mode == "chunky" then  -- a line in two writes, then one over the registry's 1 MiB cap
  local line = json.encode{event = "progress", step = 1, total_steps = 1, loss = 1.5}
  io.stdout:write(line:sub(1, 10))
  io.stdout:flush()
  fb.timer.after(50, function()
    io.stdout:write(line:sub(11), "\n", string.rep("x", 2 << 20), "\n")
    emit{event = "done", adapter = dir .. "/adapter", summary = {}}
    fb.exit(0)
  end)
  return
end
if mode == "grow" then
  local held = {}
  fb.timer.every(interval, function()
    held[#held + 1] = string.rep("x", 8 << 20)
    emit{event = "progress", step = #held, total_steps = steps, loss = 1.0}
  end)
  return
end
if mode == "hang" then
  fb.timer.every(60000, function() end)  -- alive, silent
  return
end

fb.timer.every(interval, function(t)
  step = step + 1
  emit{event = "progress", step = step, total_steps = steps, epoch = step / steps,
       total_epochs = 1, loss = 2.0 / step, lr = 1e-4, tokens_per_s = 1000, eta_s = json.null}
  if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < steps then checkpoint() end
  if mode == "crash" and step == 2 then
    emit{event = "error", message = "dataset error", where = "data.jsonl:17"}
    t:stop()
    fb.exit(1)
  elseif step >= steps and mode ~= "ignore_term" then
    t:stop()
    emit{event = "done", adapter = dir .. "/adapter", summary = {final_loss = 2.0 / step}}
    fb.exit(0)
  end
end)
