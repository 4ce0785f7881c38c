-- `fastbrain train --estimate` (fastbrain.estimate) on the bundled model against the run it
-- foretells: the same steps and tokens as the trainer counts, peak memory and time near the
-- measured ones, the calibration cached for the next estimate, a warning for a run of hours, a
-- clear error for bad input, and, inside a memory cgroup too small for the run, the estimate
-- saying so and `fastbrain train` refusing to start (exit 4) with the numbers.
-- Usage: fastbrain run tests/lua/test_estimate.lua path/to/fastbrain
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local json = fb.json

local EXE = assert(arg[1], "usage: test_estimate.lua FASTBRAIN")
local tmp = os.tmpname()
os.remove(tmp)
assert(fb.fs.mkdir_p(tmp))
local CACHE = tmp .. "/cache"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- run(args [, prefix]) -> exit code, stdout, stderr, seconds; prefix goes before the command
-- (a shell fragment, e.g. to enter a cgroup).
local function run(args, prefix)
  local cmd = {"FASTBRAIN_CACHE=" .. q(CACHE), "exec", q(EXE)}
  for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
  local started = fb.now()
  local p = io.popen(("%s%s 2>%s"):format(prefix or "", table.concat(cmd, " "), q(tmp .. "/err")))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out, fb.fs.read(tmp .. "/err") or "", (fb.now() - started) / 1000
end

-- A skill's first 24 examples: a run of a few seconds.
local DATA = tmp .. "/data.jsonl"
do
  local lines = {}
  for line in io.lines(fb.root .. "/share/skills/plumbing-receptionist/data.jsonl") do
    if #lines < 24 then lines[#lines + 1] = line end
  end
  assert(fb.fs.write_atomic(DATA, table.concat(lines, "\n") .. "\n"))
end
local RUN = {"train", "--model", fb.root .. "/share/models/tiny", "--data", DATA, "--epochs", "2",
             "--micro-batch", "2", "--device", "cpu", "--prompt", "Do you fix leaks?"}
local function with(extra)
  local args = {table.unpack(RUN)}
  for _, a in ipairs(extra) do args[#args + 1] = a end
  return args
end

local first, cached

T.test("an estimate measures the model's shape once, then answers from the cache", function()
  -- --no-calibrate never measures: with nothing cached, the plan but no time or memory
  local code, out, err = run(with{"--estimate", "--json", "--no-calibrate"})
  T.eq(code, 0, err)
  local unmeasured = json.decode(out)
  T.eq({unmeasured.cpu, unmeasured.examples, unmeasured.steps}, {nil, 22, 44})
  local _, words = run(with{"--estimate", "--no-calibrate"})
  T.matches(words, "CPU: this model's shape is not calibrated yet")
  code, out, err = run(with{"--estimate", "--json"})
  T.eq(code, 0, err)
  first = json.decode(out)
  -- 22 examples twice make fewer than 50 steps of 2: small-data mode takes one at a time, as
  -- the trainer will.
  T.eq({first.cpu.calibration.cached, first.examples, first.micro_batch, first.grad_accum, first.steps},
       {false, 22, 1, 1, 44})
  T.eq(first.cpu.fits, true)
  T.eq(first.cpu.free_bytes > first.cpu.peak_bytes, true)
  T.eq(#first.warnings, 0)
  local seconds
  code, out, err, seconds = run(with{"--estimate", "--json"})
  T.eq(code, 0, err)
  cached = json.decode(out)
  T.eq(cached.cpu.calibration.cached, true)
  T.eq({cached.steps, cached.cpu.peak_bytes, cached.cpu.seconds}, {first.steps, first.cpu.peak_bytes, first.cpu.seconds})
  T.eq(seconds < first.cpu.calibration.seconds, true, "a cached estimate is quicker than a calibration")
  code, out, err = run(with{"--estimate", "--json", "--no-calibrate"})
  T.eq(code, 0, err)
  T.eq(json.decode(out).cpu.peak_bytes, first.cpu.peak_bytes)
end)

T.test("a calibration cached at other depths (an older fastbrain's) is not read", function()
  local dir = CACHE .. "/calibration"
  local name = assert(fb.fs.list(dir))[1]
  local saved = assert(fb.fs.read(dir .. "/" .. name))
  local c = json.decode(saved)
  for _, p in ipairs(c.points) do if p.layers ~= 1 then p.layers = 2 end end  -- measured at 1 and 2,
  c.key.layers = nil                                                         -- before the key said so
  assert(fb.fs.write_atomic(dir .. "/" .. name, json.encode(c)))
  -- the trainer's own check reads the cache only: it finds none for today's depths and trains
  local code, _, err = run(with{"--out", tmp .. "/other-depths"})
  assert(fb.fs.write_atomic(dir .. "/" .. name, saved))
  T.eq(code, 0, err)
end)

T.test("the run does what the estimate foretold", function()
  local code, out, err = run(with{"--out", tmp .. "/adapter", "--json"})
  T.eq(code, 0, err)
  local start
  for line in out:gmatch("[^\n]+") do
    local ev = json.decode(line)
    if ev.event == "start" then start = ev end
  end
  local summary = json.decode((assert(fb.fs.read(tmp .. "/adapter/summary.json"))))
  T.eq({start.total_steps, start.examples, start.eval_examples}, {first.steps, first.examples, first.eval_examples})
  T.eq(summary.tokens == first.tokens_per_epoch * first.epochs, true, "the tokens the trainer saw")
  local peak = summary.peak_memory_bytes
  T.eq(math.abs(first.cpu.peak_bytes - peak) / peak < 0.3, true,
       ("peak memory: estimated %d, measured %d"):format(first.cpu.peak_bytes, peak))
  -- Time is noisy on a shared machine: the estimate need only be of the right order.
  local ratio = first.cpu.seconds / summary.wall_time_s
  T.eq(ratio > 0.25 and ratio < 4, true, ("time: estimated %.1f s, measured %.1f s"):format(
    first.cpu.seconds, summary.wall_time_s))
  io.stdout:write(("     estimated %.1f s and %.0f MiB, measured %.1f s and %.0f MiB\n"):format(
    first.cpu.seconds, first.cpu.peak_bytes / 2 ^ 20, summary.wall_time_s, peak / 2 ^ 20))
end)

T.test("a run of hours says so; a person reads the estimate in words", function()
  local code, out = run(with{"--estimate", "--json", "--epochs", "5000"})
  T.eq(code, 0)
  local e = json.decode(out)
  T.eq(e.cpu.seconds > 3600, true)
  T.matches(e.warnings[1], "^this run takes about [%d.]+ h on the CPU$")
  code, out = run(with{"--estimate"})
  T.eq(code, 0)
  T.matches(out, "22 examples %(2 held out%), %d+ tokens an epoch")
  T.matches(out, ("%d steps"):format(first.steps))
  T.matches(out, "CPU %(.+%): about %d+ [smin]+, [%d.]+ GiB at its peak of [%d.]+ GiB free")
end)

T.test("bad input: the file or field named, exit 1 or 2", function()
  local code, _, err = run{"train", "--model", fb.root .. "/share/models/tiny", "--data", tmp .. "/none.jsonl",
                           "--estimate"}
  T.eq(code, 1)
  T.matches(err, "none%.jsonl")
  code, _, err = run(with{"--estimate", "--micro-batch", "0"})
  T.eq(code, 2)
  T.matches(err, "micro_batch")
  code, _, err = run(with{"--no-calibrate"})
  T.eq(code, 2)
  T.matches(err, "^fastbrain train: %-%-no%-calibrate needs %-%-estimate\n")
end)

-- A memory cgroup below this process's own, limited to a fraction of the estimated peak; nil
-- when cgroups cannot be made here (not root, no memory controller).
local function small_cgroup(limit)
  local f = io.open("/proc/self/cgroup")
  local text = f and f:read("a") or ""
  if f then f:close() end
  local v1 = text:match("%d+:[^:\n]*memory[^:\n]*:(%S*)")
  local dir, file = "/sys/fs/cgroup/memory" .. (v1 or "") .. "/fb-estimate-" .. tmp:match("[^/]+$"), "memory.limit_in_bytes"
  if not v1 then dir, file = "/sys/fs/cgroup" .. (text:match("0::(%S*)") or "") .. "/fb-estimate-" .. tmp:match("[^/]+$"), "memory.max" end
  dir = dir:gsub("//", "/")
  if not os.execute(("mkdir %s 2>/dev/null && echo %d > %s/%s 2>/dev/null"):format(q(dir), limit, q(dir), file)) then
    os.execute(("rmdir %s 2>/dev/null"):format(q(dir)))
    return nil
  end
  return dir
end

T.test("too little memory: the estimate says so and the trainer refuses to start", function()
  local dir = small_cgroup(math.floor(cached.cpu.peak_bytes * 0.6))
  if not dir then
    io.stdout:write("     skipped: no memory cgroup can be made here\n")
    return
  end
  local enter = ("echo $$ > %s/cgroup.procs && "):format(q(dir))
  local code, out, err = run(with{"--estimate", "--json"}, enter)
  T.eq(code, 0, err)
  local e = json.decode(out)
  T.eq(e.cpu.fits, false)
  T.matches(e.warnings[1], "^this run needs about [%d.]+ GiB at its peak on the CPU and [%d.]+ GiB is free: " ..
            "lower micro_batch %(1%) or max_len")
  local refused, _, why = run(with{"--out", tmp .. "/refused"}, enter)
  os.execute(("rmdir %s"):format(q(dir)))
  T.eq(refused, 4, why)
  T.matches(why, "needs about [%d.]+ GiB at its peak on the CPU")
  T.eq(fb.fs.mode(tmp .. "/refused"), nil, "nothing written")
end)

T.test("teardown", function() os.execute("rm -rf " .. q(tmp)) end)

T.run()
