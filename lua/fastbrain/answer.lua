-- fastbrain.answer: a model's answer to one prompt, computed by `fastbrain generate` in a child
-- process and awaited from a coroutine with short sleeps, so the server's loop keeps serving
-- while the model works (generation in-process would hold the loop for seconds, and the
-- router stops a handler that does). Linux: the child is this very binary, /proc/PID/exe.
local fb = require "fastbrain"

local M = {POLL_MS = 25}
-- how long past its timeout a killed child may take to report (its status file comes last)
local GRACE_MS = 5000
local KILLED = 128 + 9  -- the shell's status of a child killed by SIGKILL

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function self_exe()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("l"):match("^%d+")
  f:close()
  return "/proc/" .. pid .. "/exe"
end
local EXE = self_exe()

-- start(model_dir, prompt, {adapter =, system =, max_tokens =, temperature =,
-- timeout_ms = 120000}) -> pending | nil, err: the child is running; it is killed at the timeout.
function M.start(model_dir, prompt, opts)
  -- coreutils' timeout kills the child at the deadline, so none outlives its waiter
  local timeout_ms = opts.timeout_ms or 120000
  local args = {"timeout", "-s", "KILL", ("%.3f"):format(timeout_ms / 1000),
                EXE, "generate", "--model", model_dir, "--prompt", prompt,
                "--max-tokens", tostring(opts.max_tokens or 128)}
  for _, o in ipairs({{"adapter", "--adapter"}, {"system", "--system"}, {"temperature", "--temperature"}}) do
    if opts[o[1]] then args[#args + 1] = o[2]; args[#args + 1] = tostring(opts[o[1]]) end
  end
  for i, a in ipairs(args) do
    -- A shell command ends at a NUL byte, taking the quoting with it: refuse one.
    if a:find("\0", 1, true) then return nil, "a NUL byte in the prompt or options" end
    args[i] = quote(a)
  end
  local base = os.tmpname()  -- base.out, base.err, then base.rc (renamed into place) last
  local cmd = ("(%s >%s 2>%s </dev/null; echo $? >%s && mv %s %s) &"):format(table.concat(args, " "),
    quote(base .. ".out"), quote(base .. ".err"), quote(base .. ".tmp"), quote(base .. ".tmp"), quote(base .. ".rc"))
  if not os.execute(cmd) then
    os.remove(base)
    return nil, "cannot start fastbrain generate"
  end
  return {base = base, deadline = fb.now() + timeout_ms + GRACE_MS}
end

-- wait(pending) -> text | nil, err (the child's own message). Call it from a coroutine.
function M.wait(p)
  while not fb.fs.mode(p.base .. ".rc") do
    if fb.now() > p.deadline then return nil, "fastbrain generate: no answer in time" end
    fb.sleep(M.POLL_MS)
  end
  local rc, out, err = fb.fs.read(p.base .. ".rc"), fb.fs.read(p.base .. ".out"), fb.fs.read(p.base .. ".err")
  for _, ext in ipairs({"", ".out", ".err", ".rc"}) do os.remove(p.base .. ext) end
  if tonumber(rc) == KILLED then return nil, "fastbrain generate: no answer in time" end
  -- The child's message is its last line on stderr (log lines come before it).
  if tonumber(rc) ~= 0 then return nil, (err or ""):match("([^\n]*)\n*$") end
  return ((out or ""):gsub("\n$", ""))
end

return M
