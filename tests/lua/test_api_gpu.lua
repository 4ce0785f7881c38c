-- Training on a GPU through the dashboard's API, with `fastbrain serve` as a process of its own
-- whose workers open the CUDA emulator's plugin (FB_CUDA_PLUGIN in the server's environment,
-- which its workers inherit; the server itself never opens it): a job asked for device "cuda"
-- trains on it and says so in its status and summary; a job whose GPU faults fails as "the GPU
-- failed" with the CUDA error in its log, and the server goes on serving.
-- Usage: fastbrain run tests/lua/test_api_gpu.lua PATH-TO-FASTBRAIN PATH-TO-EMULATED-PLUGIN
local T = require "tests.lua.testing"
local server = require "tests.api.server"

local bin = assert(arg[1], "usage: test_api_gpu.lua PATH-TO-FASTBRAIN PATH-TO-PLUGIN")
local plugin = assert(arg[2], "usage: test_api_gpu.lua PATH-TO-FASTBRAIN PATH-TO-PLUGIN")
local env = "FB_CUDA_PLUGIN=" .. plugin .. " OPENBLAS_NUM_THREADS=1"

T.test("a job asked for cuda trains on the (emulated) GPU and says so", function()
  local srv <close> = server.spawn(bin, server.tmpdir(), {}, env)
  server.fast_skill(srv, "gpu-skill")
  T.eq(server.call(srv, "POST", "/api/train-skill/gpu-skill", {max_steps = 3, device = "cuda"}), 202)
  local st = server.wait_state(srv, "gpu-skill", "succeeded", "failed")
  T.eq(st.state, "succeeded", st.reason)
  T.eq(st.device, "cuda")
  T.matches(st.device_name, "^fastbrain CUDA emulator %(sm_90")
  T.eq(st.summary.device, "cuda")
  assert(st.summary.peak_memory_bytes > 0)
  local _, adapters = server.call(srv, "GET", "/api/adapters")
  T.eq(adapters.adapters[1].device, "cuda")
end, {timeout = 300000})

T.test("a CUDA fault ends the worker, never the server", function()
  local srv <close> = server.spawn(bin, server.tmpdir(), {}, env .. " FB_EMU_FAULT_AT=30")
  server.fast_skill(srv, "faulty")
  T.eq(server.call(srv, "POST", "/api/train-skill/faulty", {max_steps = 3, device = "cuda"}), 202)
  local st = server.wait_state(srv, "faulty", "failed", "succeeded")
  T.eq(st.state, "failed")
  T.eq(st.reason, "the GPU failed: a CUDA fault ended the worker (its log has the error)")
  local _, log = server.call(srv, "GET", "/api/jobs/" .. st.job .. "/log?lines=50")
  local text = {}
  for _, l in ipairs(log.lines) do text[#text + 1] = l.message end
  T.matches(table.concat(text, "\n"), "cuda%-emu: fault in [%w_]+ block .*injected fault")
  T.eq(server.call(srv, "GET", "/api/health"), 200)
  -- the next job of the skill, on the CPU, runs as usual
  T.eq(server.call(srv, "POST", "/api/train-skill/faulty", {max_steps = 2, device = "cpu"}), 202)
  T.eq(server.wait_state(srv, "faulty", "succeeded", "failed").state, "succeeded")
end, {timeout = 300000})

T.run()
