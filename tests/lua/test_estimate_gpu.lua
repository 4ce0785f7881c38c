-- The estimate on a GPU, the emulated one (FB_CUDA_PLUGIN): with a usable GPU, `fastbrain train
-- --estimate` calibrates the model's shape there too and says the run's time and device memory
-- on it; `--device cpu` leaves the GPU out; without a GPU it says why there is none.
-- Usage: fastbrain run tests/lua/test_estimate_gpu.lua path/to/fastbrain path/to/emulated-plugin
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local json = fb.json

local EXE, PLUGIN = assert(arg[1]), assert(arg[2], "usage: test_estimate_gpu.lua FASTBRAIN PLUGIN")
local tmp = os.tmpname()
os.remove(tmp)
assert(fb.fs.mkdir_p(tmp))

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- estimate(plugin, extra...) -> the estimate (the command must succeed)
local function estimate(plugin, ...)
  local args = {"--model", fb.root .. "/share/models/tiny", "--data", tmp .. "/data.jsonl", "--max-len", "64",
                "--micro-batch", "1", ...}
  for i, a in ipairs(args) do args[i] = q(a) end
  local p = io.popen(("FASTBRAIN_CACHE=%s FB_CUDA_PLUGIN=%s %s --log-level warn train %s --estimate --json 2>%s"):format(
    q(tmp .. "/cache"), q(plugin), q(EXE), table.concat(args, " "), q(tmp .. "/err")))
  local out = p:read("a")
  assert(p:close(), "fastbrain train --estimate failed: " .. (fb.fs.read(tmp .. "/err") or ""))
  return json.decode(out)
end

T.test("setup: short examples", function()
  local lines = {}
  for i = 1, 12 do
    lines[i] = json.encode{messages = {{role = "user", content = "Is slot " .. i .. " free?"},
                                       {role = "assistant", content = "Yes, slot " .. i .. " is free."}}}
  end
  assert(fb.fs.write_atomic(tmp .. "/data.jsonl", table.concat(lines, "\n") .. "\n"))
end)

T.test("a usable GPU is calibrated too: time and device memory on it", function()
  local e = estimate(PLUGIN)
  T.eq(e.gpu_note, nil)
  T.matches(e.gpu.device_name, "emulator")
  T.eq(e.gpu.seconds > 0 and e.gpu.peak_bytes > 0, true)
  T.eq(e.gpu.calibration.cached, false)
  T.eq(e.cpu.seconds > 0, true)
  T.eq(estimate(PLUGIN).gpu.calibration.cached, true, "the second estimate reads the cache")
end)

T.test("--device cpu leaves the GPU out; with no GPU the estimate says why", function()
  local e = estimate(PLUGIN, "--device", "cpu")
  T.eq({e.gpu, e.gpu_note}, {nil, nil})
  e = estimate(tmp .. "/no-such-plugin.so")
  T.eq(e.gpu, nil)
  T.matches(e.gpu_note, "device \"cuda\"")
end)

T.test("teardown", function() os.execute("rm -rf " .. q(tmp)) end)

T.run()
