-- The worker for the API tests: tests/jobs/worker.lua, with the real spec's max_steps read as
-- its step count at 20 ms a step, so a test can hold a job running (and cancel it).
local fb = require "fastbrain"
local path = assert(arg[1], "usage: worker.lua JOBDIR") .. "/spec.json"
local spec = fb.json.decode(assert(fb.fs.read(path)))
if spec.max_steps and spec.max_steps > 0 then
  spec.steps, spec.interval_ms = spec.max_steps, 20
  assert(fb.fs.write_atomic(path, fb.json.encode(spec)))
end
dofile(fb.root .. "/tests/jobs/worker.lua")
