-- fastbrain: the module scripts get from `require "fastbrain"`.
-- Submodules (json, timer, log, and those added later) load on first use: `fb.json` is
-- `require "fastbrain.json"`. Coroutine helpers (spawn, sleep) live here because every
-- asynchronous part of the engine resumes coroutines the same way.
local core = require "fastbrain.core"

local M = {
  version = core.version,
  root = core.root,      -- the folder holding lua/, scripts/, web/, share/
  sanitized = core.sanitized,  -- built with AddressSanitizer
  now = core.now,        -- monotonic clock in milliseconds
  on_signal = core.on_signal,  -- on_signal("int"|"term", fn): replaces the default exit
  guard = core.guard,          -- guard(co, ms [, on_stop]): stop co once it runs ms without yielding
  try = core.try,              -- try(fn, ...): pcall -> true, ... | false, err, "memory"|"error"
  exit = core.exit,            -- exit(code): stop the loop, clean up, exit with code
  isatty = core.isatty,        -- isatty(fd): whether a descriptor (1: stdout) is a terminal
}

-- Resume `co` with the given values; an error inside it is logged with its traceback and the
-- coroutine is closed (its pending `<close>` variables run). Returns true while it is alive.
function M.resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    M.log.error("coroutine: %s", debug.traceback(co, tostring(err)))
    coroutine.close(co)
    return false
  end
  return coroutine.status(co) ~= "dead"
end

-- Coroutines started by spawn that may still be suspended, closed at shutdown.
local spawned = setmetatable({}, {__mode = "k"})

-- Run fn(...) in a new coroutine now; it may yield on asynchronous work (sleep, requests).
function M.spawn(fn, ...)
  if type(fn) ~= "function" then error("fastbrain.spawn: function expected", 2) end
  local co = coroutine.create(fn)
  spawned[co] = true
  M.resume(co, ...)
  return co
end

-- Called by the engine when the process ends (a signal, fastbrain.exit): closes every
-- suspended coroutine that spawn started, so their pending <close> variables run.
function M.shutdown()
  for co in pairs(spawned) do
    if coroutine.status(co) == "suspended" then coroutine.close(co) end
  end
end

-- The body of a command (engine/cmd_lua.c): main(args) runs in a coroutine. A main that never
-- waits returns its exit status here at once; one that waits on the loop (sockets, timers) makes
-- this return nil, and the loop runs until main returns, whose status goes to exit(). An error
-- in main is logged with its traceback and the status is 1.
function M.command(main, args)
  local status, finished, waiting
  M.spawn(function()
    local ok, s = xpcall(main, debug.traceback, args)
    if not ok then M.log.error("%s", tostring(s)) end
    status, finished = ok and math.tointeger(s) or 1, true
    if waiting then M.exit(status) end
  end)
  if finished then return status end
  waiting = true
  return nil
end

-- Suspend the running coroutine for ms milliseconds, letting the loop serve others.
function M.sleep(ms)
  local co, main = coroutine.running()
  if main then error("fastbrain.sleep: call it inside a coroutine (see fastbrain.spawn)", 2) end
  M.timer.after(ms, function() M.resume(co) end)
  coroutine.yield()
end

return setmetatable(M, {
  -- fb.x is require "fastbrain.x", or nil when there is no such module; any other error (a
  -- syntax error in it, a module it needs missing) is raised, not turned into a missing field.
  __index = function(t, name)
    local modname = "fastbrain." .. tostring(name)
    local ok, mod = pcall(require, modname)
    if not ok then
      if type(mod) == "string" and mod:find("module '" .. modname .. "' not found", 1, true) then return nil end
      error(mod, 2)
    end
    rawset(t, name, mod)
    return mod
  end,
})
