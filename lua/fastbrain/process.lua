-- fastbrain.process: child processes from a coroutine, with no shell: argv goes to exec as it
-- is. spawn starts a child and returns at once; p:wait() suspends the running coroutine until
-- the child has exited and its output is in, while the loop serves others; run is both.
-- The C half (engine/l_process.c, `fastbrain.process.core`) owns the child until it is reaped, so
-- an abandoned waiter leaves no zombie. docs/process.md has the whole contract.
local fb = require "fastbrain"
local child = require "fastbrain.process.core"

local M = {
  exepath = child.exepath,  -- exepath() -> the path of the running fastbrain binary
  live = child.live,        -- live() -> children whose memory is not yet freed (leak tests)
}

local Process = {}
Process.__index = Process

-- The C half's errors carry no position: raise them at the caller of spawn or run.
local function start(opts)
  local p = setmetatable({}, Process)
  local ok, handle, err = pcall(child.spawn, opts, function(result)
    p.result = result
    local co = p.waiter
    p.waiter = nil
    if co and coroutine.status(co) == "suspended" then fb.resume(co) end
  end)
  if not ok then error(handle, 3) end
  if not handle then return nil, err end
  p.handle, p.pid = handle, handle:pid()
  return p
end

-- spawn{argv =, env =, cwd =, stdin =, timeout_ms =, max_output =} -> process | nil, err
function M.spawn(opts)
  local p, err = start(opts)  -- not a tail call: start raises at this function's caller
  return p, err
end

local function in_coroutine(what)
  local _, main = coroutine.running()
  if main then error("fastbrain.process: " .. what .. " inside a coroutine (see fastbrain.spawn)", 3) end
end

-- p:wait() -> result, once the child has exited and both its pipes are drained.
function Process:wait()
  if not self.result then
    in_coroutine("wait")
    if self.waiter then error("fastbrain.process: another coroutine waits for this child", 2) end
    self.waiter = coroutine.running()
    repeat coroutine.yield() until self.result
  end
  return self.result
end

-- p:kill([signal = "kill"]) -> true | nil, err (signal: "term", "int", "hup", ...)
function Process:kill(signal) return self.handle:kill(signal) end

-- `local p <close> = process.spawn{...}`: a child still running when p goes out of scope
-- (or its coroutine is closed) is killed; it is reaped all the same.
function Process:__close()
  if not self.result then self.handle:kill() end
end

-- run(opts) -> result | nil, err: spawn and wait; a coroutine closed meanwhile kills the child.
function M.run(opts)
  in_coroutine("run")
  local p <close>, err = start(opts)
  if not p then return nil, err end
  return p:wait()
end

return M
