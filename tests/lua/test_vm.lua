-- The VM around scripts: arg, module paths, Debian's LuaSocket, the fastbrain table, log.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local script_args = {...}

T.test("arg is set as the standalone interpreter sets it", function()
  T.matches(arg[0], "tests/lua/test_vm%.lua$")
  T.eq(arg[-1], "run")
  T.matches(arg[-2], "fastbrain$")
  T.eq(#script_args, #arg)
end)

T.test("bundled modules resolve from the bundle root", function()
  T.matches(package.path, fb.root:gsub("%p", "%%%0") .. "/lua/%?%.lua")
  T.eq(package.searchpath("fastbrain", package.path), fb.root .. "/lua/fastbrain/init.lua")
end)

T.test("Debian's LuaSocket loads through package.cpath", function()
  local socket = require "socket"
  T.eq(type(socket.gettime()), "number")
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  T.eq(tonumber(port) > 0, true)
  server:close()
end)

T.test("fastbrain exposes version, clock and lazy submodules", function()
  T.matches(fb.version, "^%d+%.%d+%.%d+$")
  T.eq(type(fb.now()), "number")
  T.eq(fb.json, require "fastbrain.json")
  T.eq(fb.timer, require "fastbrain.timer")
  T.eq(fb.no_such_module, nil)
end)

T.test("a lazy submodule that exists but fails to load raises; only a missing one is nil", function()
  local dir = os.tmpname()
  os.remove(dir)
  assert(fb.fs.mkdir_p(dir .. "/fastbrain"))
  assert(fb.fs.write_atomic(dir .. "/fastbrain/zz_broken.lua", "return {\n"))
  assert(fb.fs.write_atomic(dir .. "/fastbrain/zz_needy.lua", 'return require "fastbrain.zz_absent"\n'))
  local saved = package.path
  package.path = dir .. "/?.lua;" .. package.path
  local ok1, err1 = pcall(function() return fb.zz_broken end)
  local ok2, err2 = pcall(function() return fb.zz_needy end)
  package.path = saved
  fb.fs.remove_tree(dir)
  T.eq({ok1, ok2, fb.zz_absent}, {false, false, nil})
  T.matches(err1, "zz_broken%.lua:%d+: .*expected")
  T.matches(err2, "module 'fastbrain%.zz_absent' not found")
end)

T.test("try says whether Lua ran out of memory by its status, not its message", function()
  T.eq({fb.try(function(a, b) return a + b, "x" end, 2, 3)}, {true, 5, "x"})
  local ok, err, kind = fb.try(function() error("not enough memory") end)
  T.eq({ok, kind}, {false, "error"})
  T.matches(err, "not enough memory$")
  if fb.sanitized then return end  -- ASan reserves more address space than the limit below
  -- A process with 1.5 GB of address space asks for a 2 GB string.
  local script = os.tmpname()
  assert(fb.fs.write_atomic(script, 'local fb = require "fastbrain"\n' ..
    'io.write(table.concat({tostring(select(1, fb.try(function() return ("x"):rep(2^31 - 1) end))),\n' ..
    '  select(2, fb.try(function() return ("x"):rep(2^31 - 1) end))}, " "))\n'))
  local p = assert(io.popen(("ulimit -v 1500000; %q run %q 2>&1"):format(arg[-2], script)))
  local out = p:read("a")
  p:close()
  os.remove(script)
  T.eq(out, "false not enough memory memory")
end)

T.test("log levels can be read and set; bad levels raise", function()
  local before = fb.log.level()
  fb.log.set_level("warn")
  T.eq(fb.log.level(), "warn")
  fb.log.set_level(before)
  T.raises(function() fb.log.set_level("loud") end, "expected one of debug, info, warn, error, off")
end)

T.test("on_signal checks its arguments", function()
  T.raises(function() fb.on_signal("hup", print) end, "invalid option 'hup'")
  T.raises(function() fb.on_signal("int", 3) end, "function expected")
  fb.on_signal("int", nil)  -- restoring the default is allowed
end)

T.test("spawn runs a coroutine and logs its error without stopping the loop", function(done)
  local co = fb.spawn(function() error("spawned failure") end)
  T.eq(coroutine.status(co), "dead")
  fb.timer.after(5, function() done() end)
end)

T.run()
