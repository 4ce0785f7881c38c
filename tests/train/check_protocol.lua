-- check_protocol.lua FILE: every line of FILE is a JSON object whose event is one of
-- docs/protocol.md's with all of that event's fields; prints "protocol ok N" or fails.
local fb = require "fastbrain"

local fields = {
  start = {"total_steps", "total_epochs", "examples", "eval_examples", "device", "device_name",
           "peak_memory_bytes", "model", "resumed_from_step"},
  progress = {"step", "total_steps", "epoch", "total_epochs", "loss", "loss_smoothed", "lr", "grad_norm",
              "tokens_per_s", "elapsed_s", "eta_s", "device", "device_name", "peak_memory_bytes"},
  eval = {"step", "eval_loss"},
  sample = {"step", "prompt", "text"},
  checkpoint = {"step", "path"},
  saving = {"step", "adapter"},
  log = {"level", "message"},
  done = {"summary", "adapter"},
  error = {"message", "where"},
}

local n = 0
for line in assert(io.open(arg[1])):lines() do
  n = n + 1
  local ok, ev = pcall(fb.json.decode, line)
  if not ok or type(ev) ~= "table" then error(string.format("line %d is not a JSON object: %s", n, line)) end
  local want = fields[ev.event] or error(string.format("line %d: unknown event %s", n, tostring(ev.event)))
  for _, k in ipairs(want) do
    if ev[k] == nil then error(string.format("line %d: %s event without %s", n, ev.event, k)) end
  end
end
print("protocol ok " .. n)
