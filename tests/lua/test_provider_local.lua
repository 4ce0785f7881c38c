-- The `local` provider (the engine's own model) on a tiny random model made by
-- fb_make_tiny_model (arg[1]): it answers offline without holding the loop, says when there
-- is no model, and takes over in a chain when the remote provider cannot answer.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local local_model = require "fastbrain.providers.local"
local openai = require "fastbrain.providers.openai"
local fallback = require "fastbrain.fallback"
local cosocket = require "fastbrain.cosocket"

local dir = os.tmpname()
os.remove(dir)
assert(os.execute(string.format("%q %q", arg[1], dir .. "/model")), "fb_make_tiny_model failed")

local REQ = {system = "Be brief.", messages = {{role = "user", content = "hello"}}, max_tokens = 6}

T.test("answers offline with usage, and the loop runs meanwhile", function()
  local p = local_model.new{model = dir .. "/model", max_tokens = 8}
  T.eq(p:ready(), true)
  local ticks = 0
  local timer = fb.timer.every(5, function() ticks = ticks + 1 end)
  local res, err = p:chat(REQ)
  timer:stop()
  T.eq(err, nil)
  T.eq(ticks > 0, true, "a timer ticked while the model answered")
  T.eq(type(res.text), "string")
  if res.usage.output_tokens < 1 or res.usage.output_tokens > 6 then
    error("output tokens " .. res.usage.output_tokens .. " outside 1..6")
  end
end)

T.test("a child past its timeout is killed and reaped", function()
  local answer = require "fastbrain.answer"
  local p = assert(answer.start(dir .. "/model", "hello", {timeout_ms = 1}))
  local text, err = answer.wait(p)
  T.eq(text, nil)
  T.eq(err, "fastbrain generate: no answer in time")
  T.eq(fb.fs.mode("/proc/" .. p.pid), nil, "pid " .. p.pid .. " is reaped")
end)

T.test("no model there: not ready, and the reason names the folder", function()
  local p = local_model.new{model = dir .. "/missing"}
  T.eq(select(2, p:ready()), "no model at " .. dir .. "/missing")
  T.raises(function() local_model.new{} end, "local provider: model (a directory) is required")
end)

T.test("a chain falls back to the local model when the remote one is down", function(done)
  local probe = assert(cosocket.listen("127.0.0.1", 0))
  local port = probe.port
  probe:close()  -- nothing listens there now: connection refused
  local chain = fallback.new{providers = {
    openai.new{name = "remote", base_url = "http://127.0.0.1:" .. port .. "/v1", model = "m"},
    local_model.new{model = dir .. "/model", max_tokens = 8}}, retries = 0}
  fb.spawn(T.guard(done, function()
    local res = assert(chain:request(REQ))
    T.eq(res.provider, "local")
    T.matches(res.fallbacks[1].reason, "^network: remote: .*connection refused")
    done()
  end))
end)

T.test("clean up", function() os.execute("rm -rf " .. dir) end)

T.run()
