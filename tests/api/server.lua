-- tests/api/server.lua: the API under test, run two ways over a fresh data directory, both
-- with the real `fastbrain worker` training the bundled model: scripts/serve.lua in this
-- process (start), or `fastbrain serve` as a process of its own that a test may SIGKILL
-- (spawn). Plus JSON request helpers, a fast skill (short examples, max_len 64, one example a
-- step, so a job takes a second), and /proc helpers to find and stop processes.
local client = require "tests.http.client"
local fb = require "fastbrain"

local M = {}

local function tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  return dir
end

local function sh(cmd)
  local ok = os.execute(cmd)
  assert(ok, "command failed: " .. cmd)
end

-- start(...) -> app (app.port, app.data_dir, app.registry): serve.lua in-process with the
-- extra serve options given.
function M.start(...)
  return assert(loadfile(fb.root .. "/scripts/serve.lua"))(
    "--port", "0", "--data-dir", tmpdir(), ...)
end

-- call(app, method, path [, body [, content_type [, timeout_ms]]]) -> status, decoded body,
-- response. A table body is sent as JSON. app: anything with a port.
function M.call(app, method, path, body, ctype, timeout)
  if type(body) == "table" then body = fb.json.encode(body) end
  local r = client.request(app.port, method, path, {body = body, timeout = timeout,
                                                    headers = {["Content-Type"] = ctype or "application/json"}})
  return r.status, fb.json.decode(r.body), r
end

-- Stop an in-process app and remove its data directory.
function M.stop(app)
  app:close(0)
  app.registry:close()
  app.pool:close()
  sh("rm -rf '" .. app.data_dir .. "'")
end

-- write_examples(path [, n = 10]): n chat examples ("q<i>" -> "a<i>") as JSONL, to train on.
function M.write_examples(path, n)
  local f = assert(io.open(path, "w"))
  for i = 0, (n or 10) - 1 do
    f:write(fb.json.encode({messages = {{role = "user", content = "q" .. i}, {role = "assistant", content = "a" .. i}}}), "\n")
  end
  f:close()
end

-- ---- a fast skill ------------------------------------------------------------------------

-- Training defaults that make a job on the bundled model take about 20 ms a step.
M.FAST = {max_len = 64, micro_batch = 1, grad_accum = 1, small_data = false,
          eval = {interval = 5}, samples = {max_tokens = 8}, checkpoint_interval = 2}

local PAIRS = {{"hi", "hello there"}, {"bye", "goodbye friend"}, {"price?", "about 90 dollars"},
               {"open?", "yes, 7am to 6pm"}, {"leak", "shut the main valve"},
               {"who", "clearwater plumbing"}, {"when", "tomorrow at nine"}, {"where", "millbrook"}}

-- fast_skill(app, id [, defaults]) creates skill `id` with 16 short examples and M.FAST
-- defaults (fields of `defaults` added or replaced).
function M.fast_skill(app, id, defaults)
  local d = {}
  for k, v in pairs(M.FAST) do d[k] = v end
  for k, v in pairs(defaults or {}) do d[k] = v end
  local status, body = M.call(app, "POST", "/api/skills",
                              {id = id, name = id, defaults = d, sample_prompts = {"hi"},
                               system = "You answer briefly."})
  assert(status == 201 or status == 200, "create skill: " .. tostring(status) .. " " .. fb.json.encode(body))
  local examples = {}
  for i = 1, 16 do
    local p = PAIRS[(i - 1) % #PAIRS + 1]
    examples[i] = {messages = {{role = "user", content = p[1]}, {role = "assistant", content = p[2]}}}
  end
  status, body = M.call(app, "PUT", "/api/skills/" .. id .. "/data", examples)
  assert(status == 200, "upload data: " .. tostring(status) .. " " .. fb.json.encode(body))
end

-- wait_state(app, skill, states...) polls the skill's status until its state is one of
-- states (within `timeout` ms, default 60 s): the status.
function M.wait_state(app, skill, ...)
  local want = {}
  for _, s in ipairs({...}) do want[s] = true end
  local deadline = fb.now() + (M.timeout or 60000)
  while true do
    local code, st = M.call(app, "GET", "/api/training/status/" .. skill)
    if code == 200 and want[st.state] then return st end
    if fb.now() > deadline then
      error(("%s: state stayed %s (%s)"):format(skill, tostring(st.state), tostring(st.reason)), 2)
    end
    fb.sleep(20)
  end
end

-- wait_until(fn, what [, ms]) polls fn() until it returns a true value: that value.
function M.wait_until(fn, what, ms)
  local deadline = fb.now() + (ms or M.timeout or 60000)
  while true do
    local v = fn()
    if v then return v end
    if fb.now() > deadline then error("timed out waiting for " .. what, 2) end
    fb.sleep(20)
  end
end

-- ---- processes -------------------------------------------------------------------------

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Whether pid is a live process (not gone, not a zombie).
function M.alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- Live processes whose command line contains `text` (plain), as a list of pids.
function M.pids(text)
  local out = {}
  local p = io.popen("ls /proc")
  for name in p:lines() do
    if name:match("^%d+$") and M.alive(name) then
      local cmd = (read("/proc/" .. name .. "/cmdline") or ""):gsub("%z", " ")
      if cmd:find(text, 1, true) then out[#out + 1] = tonumber(name) end
    end
  end
  p:close()
  return out
end

-- Send sig (default KILL) to pid: whether it was delivered (the process may have just ended).
function M.kill(pid, sig)
  return os.execute(("kill -%s %d 2>/dev/null"):format(sig or "KILL", pid)) == true
end

-- A spawned server as a to-be-closed variable: closing kills it (if it still runs) and
-- removes its data directory, so a failing test leaves nothing behind.
function M.close(srv)
  if M.alive(srv.pid) then M.crash(srv) end
  M.remove(srv)
end
local Spawned = {__close = M.close}

-- spawn(bin, data_dir, {args...} [, env]) -> server {pid, port, data_dir, log}: `bin serve`
-- as its own process (env: "NAME=value ..." put before it), up once it printed its address.
-- Use it as `local srv <close> = server.spawn(...)`.
function M.spawn(bin, data_dir, args, env)
  local log = data_dir .. ".serve.log"
  local pidfile = data_dir .. ".serve.pid"
  os.remove(log)
  sh(("%s '%s' serve --port 0 --data-dir '%s' %s >'%s' 2>&1 & echo $! >'%s'"):format(
    env and ("env " .. env) or "", bin, data_dir, table.concat(args or {}, " "), log, pidfile))
  local pid = assert(tonumber(read(pidfile)), "no pid")
  local port = M.wait_until(function()
    local text = read(log) or ""
    if not M.alive(pid) then error("fastbrain serve exited:\n" .. text) end
    return tonumber(text:match("serving on http://[^:]+:(%d+)"))
  end, "fastbrain serve to listen", 30000)
  return setmetatable({pid = pid, port = port, data_dir = data_dir, log = log}, Spawned)
end

-- SIGKILL a spawned server and wait until it is gone and its lock is free: a killed process's
-- main thread shows as a zombie while its other threads still exit, holding its files.
function M.crash(srv)
  M.kill(srv.pid)
  M.wait_until(function()
    return not M.alive(srv.pid) and os.execute(("flock -n '%s/lock' true"):format(srv.data_dir)) == true
  end, "the server to die and free its lock", 10000)
end

-- A fresh data directory path (not created).
M.tmpdir = tmpdir

-- Remove a spawned server's data directory and its log.
function M.remove(srv)
  sh(("rm -rf '%s' '%s' '%s.serve.pid'"):format(srv.data_dir, srv.log, srv.data_dir))
end

return M
