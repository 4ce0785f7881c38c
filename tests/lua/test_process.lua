-- fastbrain.process on real child processes: exit codes, signals, stdin, stdout and stderr,
-- the deadline, the output cap, argv untouched by any shell, clear errors, children reaped on
-- every path (an abandoned waiter included), no descriptor inherited beyond stdio, and the
-- server answering while a child runs.
local T = require "tests.lua.testing"
local client = require "tests.http.client"
local fb = require "fastbrain"
local process = require "fastbrain.process"

local dir = os.tmpname()
os.remove(dir)
assert(fb.fs.mkdir_p(dir))

-- A reaped child has no /proc entry; a zombie still has one.
local function reaped(pid) return fb.fs.mode("/proc/" .. pid) == nil end

-- Every child's handles closed and its memory freed (close callbacks run on the next turns).
local function all_freed()
  for _ = 1, 100 do
    if process.live() == 0 then return true end
    fb.sleep(10)
  end
  return false
end

local outside_coroutine = {pcall(process.run, {argv = {"true"}})}

T.test("the exit code, stdout and stderr apart", function()
  local r = process.run{argv = {"sh", "-c", "printf out; printf 'err\\n' >&2; exit 3"}}
  T.eq(r, {code = 3, stdout = "out", stderr = "err\n", stdout_dropped = 0, stderr_dropped = 0,
           timed_out = false})
  T.eq(process.run{argv = {"true"}}.code, 0)
end)

T.test("death by a signal is a signal, not a code", function()
  local r = process.run{argv = {"sh", "-c", "kill -TERM $$; sleep 5"}}
  T.eq({r.code, r.signal, r.timed_out}, {nil, 15, false})
end)

T.test("stdin reaches the child byte for byte; without one it reads nothing", function()
  local bytes = {}
  for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
  local input = table.concat(bytes):rep(4096)  -- 1 MiB: more than a pipe holds at once
  local r = process.run{argv = {"cat"}, stdin = input, max_output = #input}
  T.eq({#r.stdout, r.stdout == input, r.stdout_dropped}, {#input, true, 0})
  T.eq(process.run{argv = {"cat"}}.stdout, "")
  T.eq(process.run{argv = {"cat"}, stdin = ""}.stdout, "")
end)

T.test("a child that does not read its stdin does not take the server down", function()
  local r = process.run{argv = {"true"}, stdin = ("x"):rep(4 << 20)}
  T.eq(r.code, 0)
  -- and the child itself gets SIGPIPE's default action back: bit 13 of SigIgn is clear
  local status = process.run{argv = {"cat", "/proc/self/status"}}.stdout
  local ignored = tonumber(status:match("SigIgn:%s*(%x+)"), 16)
  T.eq(ignored & (1 << 12), 0, "SIGPIPE ignored in the child")
end)

T.test("the deadline kills the child and reaps it", function()
  local t0 = fb.now()
  local p = assert(process.spawn{argv = {"sleep", "30"}, timeout_ms = 200})
  T.eq(reaped(p.pid), false, "running before the deadline")
  local r = p:wait()
  local ms = fb.now() - t0
  T.eq({r.timed_out, r.signal, r.code}, {true, 9, nil})
  -- The loop's timers count from the loop's cached time, which may be a few ms behind fb.now().
  if ms < 190 or ms > 2000 then error(("answered after %.1f ms, not about 200"):format(ms)) end
  T.eq(reaped(p.pid), true, "pid " .. p.pid .. " is gone")
  T.eq(all_freed(), true)
end)

T.test("output past max_output is cut and counted, never kept", function()
  local r = process.run{argv = {"head", "-c", "100000", "/dev/zero"}, max_output = 1000}
  T.eq({#r.stdout, r.stdout_dropped, r.code}, {1000, 99000, 0})
  -- endless output: bounded memory, ended by the deadline
  r = process.run{argv = {"yes"}, max_output = 10, timeout_ms = 300}
  T.eq({r.stdout, r.timed_out}, {"y\ny\ny\ny\ny\n", true})
  if r.stdout_dropped < 1000 then error("only " .. r.stdout_dropped .. " bytes dropped") end
  T.eq(process.run{argv = {"sh", "-c", "echo e >&2"}, max_output = 0}, {code = 0, stdout = "",
       stderr = "", stdout_dropped = 0, stderr_dropped = 2, timed_out = false})
end)

T.test("argv reaches exec untouched: no shell, no globbing, no splitting", function()
  local marker = dir .. "/injected"
  local args = {"a b", "it's", '"q"', "$(touch " .. marker .. ")", "`touch " .. marker .. "`",
                "; touch " .. marker, "*", "", "new\nline", "$HOME", "\\"}
  local argv = {"printf", "%s\\0"}
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r = process.run{argv = argv}
  T.eq(r.stdout, table.concat(args, "\0") .. "\0")
  T.eq(fb.fs.mode(marker), nil, "a shell ran " .. marker)
  local p, err = process.spawn{argv = {"printf", "a\0b"}}
  T.eq({p, err}, {nil, "argv[2] contains a NUL byte"})
end)

T.test("a child inherits its stdio and nothing else: not a socket this process opened", function()
  local socket = require "socket"
  local listener = assert(socket.bind("127.0.0.1", 0))  -- LuaSocket opens it without close-on-exec
  local r = process.run{argv = {"ls", "/proc/self/fd"}}
  listener:close()
  -- ls's own directory descriptor is the fourth
  T.eq({r.code, r.stdout}, {0, "0\n1\n2\n3\n"})
end)

T.test("env replaces the environment; without it the child inherits ours; cwd", function()
  local r = process.run{argv = {"/usr/bin/env"}, env = {A = "1 2", B = "x=y"}}
  local lines = {}
  for line in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = line end
  table.sort(lines)
  T.eq(lines, {"A=1 2", "B=x=y"})
  T.eq(process.run{argv = {"sh", "-c", 'printf %s "$PATH"'}}.stdout, os.getenv("PATH"))
  T.eq(process.run{argv = {"pwd"}, cwd = dir}.stdout, dir .. "\n")
end)

T.test("what cannot run says why", function()
  T.eq({process.spawn{argv = {dir .. "/missing"}}}, {nil, "cannot run " .. dir .. "/missing: no such file or directory"})
  T.eq({process.run{argv = {"fastbrain-no-such-program"}}},
       {nil, "cannot run fastbrain-no-such-program: no such file or directory"})
  T.eq({process.run{argv = {dir}}}, {nil, "cannot run " .. dir .. ": permission denied"})
  T.eq({process.run{argv = {"true"}, cwd = dir .. "/nope"}}, {nil, "cwd " .. dir .. "/nope: not a directory"})
  T.eq(all_freed(), true)
end)

T.test("misuse raises at the caller's line", function()
  local here = "test_process.lua:%d+: "
  local function raises(opts, msg)
    local ok, err = pcall(function() process.run(opts) end)
    T.eq(ok, false)
    T.matches(err, here .. msg:gsub("%p", "%%%0"))
  end
  raises({}, "process: argv must be a list of strings")
  raises({argv = {}}, "process: argv is empty (argv[1] is the program)")
  raises({argv = {"true", 1}}, "process: argv[2] must be a string")
  raises({argv = {"true"}, timeout = 5}, "process: unknown option 'timeout'")
  raises({argv = {"true"}, timeout_ms = 0}, "process: timeout_ms must be an integer >= 1")
  raises({argv = {"true"}, env = {A = 1}}, "process: env must map names (strings) to values (strings)")
  raises({argv = {"true"}, stdin = 5}, "process: stdin must be a string")
  T.eq(outside_coroutine[1], false)
  T.matches(outside_coroutine[2], "run inside a coroutine")
end)

T.test("kill sends a signal while the child runs, and refuses once it has exited", function()
  local p = assert(process.spawn{argv = {"sleep", "30"}})
  T.eq(p:kill("term"), true)
  T.eq(p:wait().signal, 15)
  T.eq({p:kill()}, {nil, "the child has exited"})
  T.eq(reaped(p.pid), true)
end)

T.test("a coroutine closed while it waits kills its child, which is reaped", function()
  T.eq(all_freed(), true, "the earlier children are gone")
  local started
  local co = fb.spawn(function()
    started = true
    process.run{argv = {"sleep", "30"}}
    error("run returned after its coroutine was closed")
  end)
  T.eq({started, process.live()}, {true, 1})
  fb.sleep(50)
  coroutine.close(co)
  T.eq(all_freed(), true, "the child exited and its handles closed")
end)

T.test("a script that exits while its children run kills them, and its loop reaps them", function()
  local script = dir .. "/exits.lua"
  assert(fb.fs.write_atomic(script, [[
    local fb = require "fastbrain"
    local process = require "fastbrain.process"
    local dropped = assert(process.spawn{argv = {"sleep", "30"}})
    local waited = assert(process.spawn{argv = {"sleep", "30"}})
    fb.spawn(function() waited:wait() end)
    print(dropped.pid, waited.pid)
    io.stdout:flush()
    fb.timer.after(50, function() fb.exit(0) end)
  ]]))
  local t0 = fb.now()
  local r = process.run{argv = {process.exepath(), "run", script}, timeout_ms = 10000}
  T.eq({r.code, r.timed_out}, {0, false}, r.stderr)
  if fb.now() - t0 > 5000 then error(("the script took %.0f ms to exit"):format(fb.now() - t0)) end
  local pids = {}
  for pid in r.stdout:gmatch("%d+") do pids[#pids + 1] = pid end
  T.eq(#pids, 2, r.stdout)
  for _, pid in ipairs(pids) do T.eq(reaped(pid), true, "pid " .. pid .. " is gone") end
end, {timeout = 15000})

T.test("a grandchild holding the pipes does not hold the result for long", function()
  local t0 = fb.now()
  local r = process.run{argv = {"sh", "-c", "sleep 3 & echo hi"}}
  T.eq({r.code, r.stdout}, {0, "hi\n"})
  if fb.now() - t0 > 2500 then error(("waited %.0f ms for the pipes"):format(fb.now() - t0)) end
end, {timeout = 10000})

T.test("exepath is the running fastbrain binary", function()
  local r = process.run{argv = {process.exepath(), "version"}}
  T.eq(r.code, 0)
  T.matches(r.stdout, (fb.version:gsub("%p", "%%%0")))
end)

-- The real server, in this process (as scripts/serve.lua runs it).
local app = assert(loadfile(fb.root .. "/scripts/serve.lua"))("--port", "0", "--data-dir", dir .. "/data")
local handler_pids = {}
app:get("/test/child", function(_, res)
  local p = assert(process.spawn{argv = {"sleep", "1"}, timeout_ms = 5000})
  handler_pids[#handler_pids + 1] = p.pid
  res:json(200, {code = p:wait().code})
end)

T.test("the server answers /api/health while a child runs for a second", function()
  local p = assert(process.spawn{argv = {"sleep", "1"}})
  local answered, slowest = 0, 0
  while not p.result do
    local t0 = fb.now()
    local r = client.request(app.port, "GET", "/api/health")
    T.eq(r.status, 200)
    answered, slowest = answered + 1, math.max(slowest, fb.now() - t0)
    fb.sleep(20)
  end
  if answered < 10 or slowest > 500 then
    error(("%d answers during the child's second, slowest %.0f ms"):format(answered, slowest))
  end
  T.eq(p:wait().code, 0)
end, {timeout = 10000})

T.test("a request whose client left still reaps its child", function()
  local c = client.connect(app.port)
  c:send("GET /test/child HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
  while #handler_pids == 0 do fb.sleep(5) end
  c:close()
  T.eq(reaped(handler_pids[1]), false, "the child runs on")
  T.eq(client.request(app.port, "GET", "/api/health").status, 200)
  -- The child's second ends, then the loop reaps it (however slowly a loaded machine gets there).
  for _ = 1, 250 do
    if reaped(handler_pids[1]) then break end
    fb.sleep(20)
  end
  T.eq(reaped(handler_pids[1]), true, "pid " .. handler_pids[1] .. " is gone")
  T.eq(all_freed(), true)
end, {timeout = 10000})

T.test("clean up", function()
  app:close(0)
  os.execute("rm -rf '" .. dir .. "'")
end)

T.run()
