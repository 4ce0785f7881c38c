-- A small test runner for Lua test scripts run by `fastbrain run`. Tests run one after the
-- other inside a coroutine; an asynchronous test takes `done` and fails if it is not called
-- before its timeout ("expected callback never fired"). Ends with "N passed, N failed" and
-- exits 1 when any failed.
local fb = require "fastbrain"

local T = {}
local tests = {}

-- T.test(name, fn [, {timeout = ms}]): fn() runs synchronously; fn(done) when it has a parameter
-- is asynchronous and must call done() (done(err) fails it).
function T.test(name, fn, opts)
  tests[#tests + 1] = {name = name, fn = fn, timeout = opts and opts.timeout or 5000,
                       async = debug.getinfo(fn, "u").nparams > 0}
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x) end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- T.eq(actual, expected [, what]): deep equality, with math.type for numbers.
function T.eq(actual, expected, what)
  local same = deep_equal(actual, expected)
  if same and type(actual) == "number" and math.type(actual) ~= math.type(expected) then same = false end
  if not same then
    error(string.format("%sexpected %s (%s), got %s (%s)", what and (what .. ": ") or "",
      show(expected), math.type(expected) or type(expected), show(actual),
      math.type(actual) or type(actual)), 2)
  end
end

-- T.matches(s, pattern [, what]): s contains the Lua pattern.
function T.matches(s, pattern, what)
  if type(s) ~= "string" or not s:find(pattern) then
    error(string.format("%s%s does not match %q", what and (what .. ": ") or "", show(s), pattern), 2)
  end
end

-- T.raises(fn, pattern): fn() must raise an error whose message contains pattern (plain).
function T.raises(fn, pattern)
  local ok, err = pcall(fn)
  if ok then error("expected an error matching " .. pattern, 2) end
  if not tostring(err):find(pattern, 1, true) then
    error(string.format("error %q does not contain %q", tostring(err), pattern), 2)
  end
end

-- T.guard(done, fn): a callback that runs fn(...) and fails the async test if fn raises.
function T.guard(done, fn)
  return function(...)
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok then done(err) end
  end
end

local function run_one(t)
  if not t.async then
    local ok, err = xpcall(t.fn, debug.traceback)
    return ok, err
  end
  local co = coroutine.running()
  local result, waiting
  local function finish(ok, err)
    if result then return end
    result = {ok, err}
    if waiting then fb.resume(co) end  -- done() may also come before fn returns
  end
  local watchdog = fb.timer.after(t.timeout, function()
    finish(false, "expected callback never fired (timeout " .. t.timeout .. " ms)")
  end)
  local ok, err = xpcall(t.fn, debug.traceback, function(e)
    if e ~= nil then finish(false, tostring(e)) else finish(true) end
  end)
  if not ok then finish(false, err) end
  if not result then
    waiting = true
    coroutine.yield()
  end
  watchdog:stop()
  return result[1], result[2]
end

function T.run()
  fb.spawn(function()
    local passed, failed = 0, 0
    for _, t in ipairs(tests) do
      local ok, err = run_one(t)
      if ok then
        passed = passed + 1
        print("ok   " .. t.name)
      else
        failed = failed + 1
        print("FAIL " .. t.name .. "\n  " .. tostring(err):gsub("\n", "\n  "))
      end
    end
    print(string.format("%d passed, %d failed", passed, failed))
    io.stdout:flush()
    if failed > 0 then fb.exit(1) end
  end)
end

return T
