-- fastbrain.model_pool with real model processes (`fastbrain model-server`) on a tiny random
-- model (fb_make_tiny_model, arg[1]) and the bundled one: one process per model serves many
-- answers; the concurrency limit and the bounded queue hold (a full queue refuses at once);
-- a deadline ends an answer with "timeout"; a cancelled queued answer never runs; a process
-- that dies fails its answers with its reason and the next request starts a new one; a model
-- that does not load, or a prompt longer than its context, says why.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local server = require "tests.api.server"
local model_pool = require "fastbrain.model_pool"

local tmp = os.tmpname()
os.remove(tmp)
local model = tmp .. "/model"
assert(os.execute(string.format("%q %q", arg[1], model)), "fb_make_tiny_model failed")
local BUNDLED = fb.root .. "/share/models/tiny"
local HELLO = {{role = "user", content = "hello"}}

local function events(job)
  local out = {}
  for ev in function() return job:next() end do out[#out + 1] = ev end
  return out
end

local pool = model_pool.new{concurrency = 1, queue = 2}

T.test("one process answers request after request, the same as the model in-process", function()
  local want = assert(fb.model.load(model)):generate("hello", {max_tokens = 10})
  local pid
  for _ = 1, 3 do
    local text, done = assert(pool:submit(model, HELLO, {max_tokens = 10, temperature = 0})):wait()
    T.eq(text, want)
    T.eq(done.event, "done")
    assert(done.completion_tokens >= 1 and done.completion_tokens <= 10, done.completion_tokens)
    local status = pool:status()[1]
    pid = pid or status.pid
    T.eq({status.pid, status.state, status.active}, {pid, "ready", 0})
  end
  T.eq(#server.pids("model-server --model " .. model .. " "), 1)
end)

T.test("the concurrency limit and the queue hold; a full queue refuses at once", function()
  local long = {max_tokens = 400, ignore_eos = true}
  T.eq(select(2, assert(pool:submit(BUNDLED, HELLO, {max_tokens = 2})):wait()).event, "done")  -- loaded
  local jobs = {}
  for i = 1, 3 do jobs[i] = assert(pool:submit(BUNDLED, HELLO, long)) end  -- 1 running, 2 queued
  local refused, err, code = pool:submit(BUNDLED, HELLO, long)
  T.eq({refused, code}, {nil, "busy"})
  T.matches(err, "2 answers are waiting")
  local status
  for _, s in ipairs(pool:status()) do if s.model == BUNDLED then status = s end end
  assert(status.active <= 1 and status.waiting == 2, fb.json.encode(status))
  jobs[3]:cancel()  -- a queued answer that is cancelled never runs
  T.eq(events(jobs[3]), {{event = "done", finish_reason = "cancelled", prompt_tokens = 0, completion_tokens = 0}})
  jobs[1]:cancel()
  local ended = events(jobs[1])
  T.eq(ended[#ended].finish_reason, "cancelled")
  local _, done = jobs[2]:wait()
  T.eq({done.finish_reason, done.completion_tokens}, {"length", 400})
end)

T.test("a deadline ends an answer with a timeout, and stops it in the process", function()
  local job = assert(pool:submit(BUNDLED, HELLO, {max_tokens = 400, ignore_eos = true, deadline_ms = 50}))
  local text, ev = job:wait()
  T.eq({text, ev.event, ev.code}, {nil, "error", "timeout"})
  T.matches(ev.message, "no answer within 0.05 s")
  server.wait_until(function()
    for _, s in ipairs(pool:status()) do if s.model == BUNDLED then return s.active == 0 end end
  end, "the process to stop the answer", 5000)
end)

T.test("a process that dies fails its answers, and the next request starts another", function()
  local job = assert(pool:submit(BUNDLED, HELLO, {max_tokens = 400, ignore_eos = true}))
  local pid
  for _, s in ipairs(pool:status()) do if s.model == BUNDLED then pid = s.pid end end
  assert(job:next())  -- it has started
  server.kill(pid, "KILL")
  local text, ev = job:wait()
  T.eq({text, ev.code}, {nil, "failed"})
  T.matches(ev.message, "the model process ended %(signal")
  local again = assert(pool:submit(BUNDLED, HELLO, {max_tokens = 4}))
  T.eq(select(2, again:wait()).event, "done")
  for _, s in ipairs(pool:status()) do if s.model == BUNDLED then assert(s.pid ~= pid) end end
end)

T.test("a model that does not load, and a prompt past the context, say why", function()
  local text, ev = assert(pool:submit(tmp .. "/nothing", HELLO)):wait()
  T.eq(text, nil)
  T.matches(ev.message, "cannot load .*nothing")
  text, ev = assert(pool:submit(model, {{role = "user", content = string.rep("word ", 5000)}})):wait()
  T.eq({text, ev.code}, {nil, "prompt"})
  T.matches(ev.message, "fills the model's context")
end)

T.test("cleanup", function()
  pool:close()
  os.execute(("rm -rf %q"):format(tmp))
end)

T.run()
