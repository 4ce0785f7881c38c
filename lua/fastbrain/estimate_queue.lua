-- fastbrain.estimate_queue: a run's estimate (fastbrain.estimate) for the server, in a child
-- (`fastbrain train --estimate`) so the server serves on while a first calibration measures a
-- model's shape, one child at a time (a calibration measures this machine alone), and one
-- child for identical requests meanwhile.
--   get(spec [, {calibrate = false}]) -> status, body: 200 and {estimate = ...}, or an HTTP
--     status and {error = message}; it waits in the calling coroutine. calibrate = false uses
--     a calibration measured before only (none: the estimate has no time or memory).
local fb = require "fastbrain"
local process = require "fastbrain.process"
local json = fb.json

local M = {TIMEOUT_MS = 30 * 60 * 1000} -- a first calibration of a large model takes minutes

local EXE = process.exepath()

-- Run the estimate of spec in a child -> status, body.
local function estimate(spec, calibrate)
  local path = os.tmpname()
  local ok, err = fb.fs.write_atomic(path, json.encode(spec))
  if not ok then return 500, {error = err} end
  local argv = {EXE, "--log-level", "warn", "train", "--spec", path, "--estimate", "--json"}
  if not calibrate then argv[#argv + 1] = "--no-calibrate" end
  local r, perr = process.run{argv = argv, timeout_ms = M.TIMEOUT_MS}
  os.remove(path)
  if not r then return 500, {error = "cannot start the estimate: " .. perr} end
  if r.timed_out then return 504, {error = "the estimate took too long"} end
  if r.code ~= 0 then
    local last = r.stderr:match("([^\n]*)\n*$"):gsub("^fastbrain train %-%-estimate: ", "")
    return 422, {error = last ~= "" and last or "the estimate failed (exit status " .. tostring(r.code) .. ")"}
  end
  local dok, body = pcall(json.decode, r.stdout)
  if not dok then return 500, {error = "the estimate printed no result"} end
  return 200, {estimate = body}
end

local inflight = {} -- request key -> {done, status, body}
local busy = false   -- a child is estimating

-- The estimate in a coroutine of its own: a caller that goes away leaves it to finish for the
-- others waiting on it.
local function start(key, spec, calibrate)
  local run = {}
  inflight[key] = run
  fb.spawn(function()
    while busy do fb.sleep(50) end
    busy = true
    local ok, status, body = pcall(estimate, spec, calibrate)
    busy = false
    inflight[key] = nil
    run.status, run.body, run.done = ok and status or 500, ok and body or {error = tostring(status)}, true
  end)
  return run
end

function M.get(spec, opts)
  local calibrate = not opts or opts.calibrate ~= false
  local key = json.encode{spec, calibrate}
  local run = inflight[key] or start(key, spec, calibrate)
  while not run.done do fb.sleep(50) end
  return run.status, run.body
end

return M
