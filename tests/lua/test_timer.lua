-- fastbrain.timer and the coroutine helpers: order, periods, stop, errors, memory.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local timer = fb.timer

T.test("one-shot timers fire in deadline order", function(done)
  local order = {}
  local function mark(n) return function() order[#order + 1] = n end end
  timer.after(30, mark(30))
  timer.after(10, mark(10))
  timer.after(20, mark(20))
  timer.after(0, mark(0))
  timer.after(45, T.guard(done, function()
    T.eq(order, {0, 10, 20, 30})
    done()
  end))
end)

T.test("every keeps its period and stops inside its own callback", function(done)
  local start, ticks = fb.now(), {}
  timer.every(20, T.guard(done, function(t)
    ticks[#ticks + 1] = fb.now() - start
    if #ticks == 5 then
      t:stop()
      t:stop()  -- idempotent
      T.eq(t:active(), false)
      for i, at in ipairs(ticks) do
        if at < 20 * i - 1 then error(("tick %d at %.1f ms, before its period"):format(i, at)) end
      end
      if ticks[5] > 400 then error("5 ticks of 20 ms took " .. ticks[5] .. " ms") end
      timer.after(60, function() T.eq(#ticks, 5); done() end)  -- no tick after stop
    end
  end))
end)

T.test("a callback error is logged and the loop and schedule go on", function(done)
  local calls = 0
  local t = timer.every(5, function()
    calls = calls + 1
    error("boom from a timer")
  end)
  timer.after(1, function() error("boom from a one-shot") end)
  timer.after(60, T.guard(done, function()
    t:stop()
    if calls < 3 then error("every stopped after its error: " .. calls .. " calls") end
    done()
  end))
end)

T.test("a dropped handle keeps firing; stop releases it for collection", function(done)
  local fired = false
  timer.after(5, function() fired = true end)  -- handle not kept
  collectgarbage()
  collectgarbage()
  timer.after(20, T.guard(done, function()
    T.eq(fired, true)
    local weak = setmetatable({}, {__mode = "v"})
    weak[1] = timer.every(1000, function() end)
    weak[1]:stop()
    collectgarbage()
    collectgarbage()
    T.eq(weak[1], nil, "stopped timer collected")
    done()
  end))
end)

T.test("<close> stops the timer at scope end", function(done)
  local fired = false
  do
    local t <close> = timer.after(5, function() fired = true end)
    T.eq(t:active(), true)
  end
  timer.after(30, T.guard(done, function() T.eq(fired, false); done() end))
end)

T.test("argument checks", function()
  T.raises(function() timer.after(-1, print) end, "delay must be >= 0")
  T.raises(function() timer.every(0, print) end, "period must be > 0")
  T.raises(function() timer.after(5) end, "function expected")
  T.matches(tostring(timer.after(1, function() end)), "^fastbrain.timer %(running%)")
end)

local function rss_kb()
  local f = assert(io.open("/proc/self/statm"))
  f:read("n")  -- the total size; the resident set comes next
  local pages = f:read("n")
  f:close()
  return pages * 4
end

local function churn(n)
  for _ = 1, n do
    local t = timer.every(1000, function() end)
    t:stop()
  end
  for _ = 1, n // 2 do timer.after(100000, function() end):stop() end
  collectgarbage()
  collectgarbage()
end

T.test("10,000 timers started and stopped do not grow memory", function(done)
  churn(10000)  -- warm up allocator and tables
  fb.spawn(function()
    fb.sleep(1)  -- let close callbacks run
    local lua_before, rss_before, live_before = collectgarbage("count"), rss_kb(), timer.live()
    for _ = 1, 3 do
      churn(10000)
      fb.sleep(1)
    end
    local lua_after, rss_after = collectgarbage("count"), rss_kb()
    local ok, err = pcall(function()
      if timer.live() > live_before then
        error(("%d timers still allocated, %d before"):format(timer.live(), live_before))
      end
      if lua_after - lua_before > 64 then error(("Lua heap grew %.0f KiB"):format(lua_after - lua_before)) end
      -- ASan's quarantine keeps freed memory resident, so RSS says nothing there
      if not fb.sanitized and rss_after - rss_before > 1024 then
        error(("RSS grew %d KiB"):format(rss_after - rss_before))
      end
    end)
    done(not ok and err or nil)
  end)
end)

T.test("sleep suspends only its coroutine", function(done)
  local log = {}
  fb.spawn(function() fb.sleep(20); log[#log + 1] = "slow" end)
  fb.spawn(function() fb.sleep(5); log[#log + 1] = "fast" end)
  log[#log + 1] = "main"
  timer.after(40, T.guard(done, function() T.eq(log, {"main", "fast", "slow"}); done() end))
end)

local main_ok, main_err = pcall(fb.sleep, 1)  -- the main chunk is not a coroutine
T.test("sleep outside a coroutine raises", function()
  T.eq(main_ok, false)
  T.matches(main_err, "call it inside a coroutine")
end)

T.test("now is monotonic and in milliseconds", function(done)
  local a = fb.now()
  timer.after(25, T.guard(done, function()
    local elapsed = fb.now() - a
    if elapsed < 24 or elapsed > 1000 then error("25 ms timer measured " .. elapsed .. " ms") end
    done()
  end))
end)

T.run()
