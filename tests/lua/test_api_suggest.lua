-- POST /api/skills/:skill/scenarios/suggest over real HTTP, the provider chain pointed at the
-- OpenAI-compatible and Anthropic stand-ins: drafts checked as scenarios (a broken one, one that
-- copies a training question and a line that is not JSON dropped with their reasons, a taken id
-- renamed), nothing saved until the person keeps a draft, 409 while a task runs, a 429 falls
-- back to Anthropic.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local json = fb.json
local router = require "fastbrain.router"
local http = require "fastbrain.http_client"
local standin = require "tests.lua.standin"

local srv = standin.start()
local data_dir = os.tmpname()
os.remove(data_dir)
fb.fs.mkdir_p(data_dir .. "/skills/plumber")
fb.fs.write_atomic(data_dir .. "/skills/plumber/skill.json", json.encode({name = "Plumber", system = "You book visits."}))
fb.fs.write_atomic(data_dir .. "/skills/plumber/data.jsonl", json.encode({messages = {
  {role = "user", content = "What are your hours?"}, {role = "assistant", content = "7am to 6pm."}}}) .. "\n")
local kept = {id = "leak", messages = {{role = "user", content = "My sink leaks"}}, rubric = "offers a visit"}
fb.fs.write_atomic(data_dir .. "/skills/plumber/scenarios.jsonl", json.encode(kept) .. "\n")

local chain = srv:chain()
local app = router.new()
require("fastbrain.api.scenarios").mount(app, {data_dir = data_dir, chain = chain})
local port = assert(app:listen{host = "127.0.0.1", port = 0})
local PATH = "/api/skills/plumber/scenarios/suggest"

local function call(method, path, body)
  local res = assert(http.request{url = "http://127.0.0.1:" .. port .. path, method = method,
                                  body = body and json.encode(body), headers = {["content-type"] = "application/json"}})
  return res.status, json.decode(res.body)
end

local function finished()
  local _, body
  repeat
    fb.sleep(20)
    _, body = call("GET", PATH)
  until body.task.state ~= "running"
  return body.task
end

local function draft(id, question, extra)
  local s = {id = id, messages = {{role = "user", content = question}}, rubric = "stays calm"}
  for k, v in pairs(extra or {}) do s[k] = v end
  return json.encode(s)
end

T.test("drafts come back checked, nothing is saved, a second task waits", function(done)
  srv:queue("openai", {status = 200, delay = 150, json = standin.openai_ok(table.concat({
    draft("burst-pipe", "A pipe burst!", {checks = {must_include_any = {"main valve", "shut off"}}}),
    draft("hours", "what are your   HOURS?"),                   -- a training question
    draft("leak", "The tap drips all night"),                    -- a taken id
    draft("broken", "Hi", {checks = {max_words = "many"}}),      -- not a scenario
    "Here are your scenarios:",                                  -- not JSON
  }, "\n")).json})
  fb.spawn(T.guard(done, function()
    local status, body = call("POST", PATH, {count = 3})
    T.eq({status, body.task.state}, {202, "running"})
    T.eq(call("POST", PATH, {count = 3}), 409)
    local task = finished()
    T.eq(task.state, "succeeded")
    local ids = {}
    for i, d in ipairs(task.drafts) do ids[i] = d.id end
    T.eq(ids, {"burst-pipe", "leak-2"})
    T.eq(task.dropped, {["repeats a question"] = 1, ["not a scenario: checks.max_words"] = 1, ["not JSON"] = 1})
    T.eq(task.provider, "groq")
    local prompt = srv.requests.openai[1].body.messages[2].content
    for _, want in ipairs({"You book visits.", "What are your hours?", "- My sink leaks", "Write 3 new"}) do
      assert(prompt:find(want, 1, true), "the prompt lacks " .. want)
    end
    local _, list = call("GET", "/api/skills/plumber/scenarios")
    T.eq(#list.scenarios, 1)  -- drafts are kept only by the person
    T.eq(call("POST", "/api/skills/plumber/scenarios", task.drafts[1]), 201)
    T.eq(call("POST", PATH, {count = 0}), 400)
    done()
  end))
end)

T.test("a 429 falls back to Anthropic; nothing usable is a failed task", function(done)
  srv:reset()
  srv:queue("openai", standin.openai_error(429, "tokens", "rate_limit_exceeded", "Rate limit reached", {["retry-after"] = "30"}))
  srv:queue("anthropic", standin.anthropic_ok(draft("no-water", "No water in the whole house")))
  fb.spawn(T.guard(done, function()
    T.eq(call("POST", PATH, {count = 1}), 202)
    local task = finished()
    T.eq({task.state, task.provider, task.drafts[1].id}, {"succeeded", "anthropic", "no-water"})
    T.eq(task.fallbacks[1].provider, "groq")
    srv:queue("anthropic", standin.anthropic_ok("I cannot help with that."))
    T.eq(call("POST", PATH, {count = 1}), 202)  -- groq is cooling down after its 429
    task = finished()
    T.eq({task.state, task.error, task.dropped["not JSON"]}, {"failed", "the providers wrote no usable scenario", 1})
    done()
  end))
end)

T.test("clean up", function()
  srv:close()
  app:close(0)
  os.execute(("rm -rf %q"):format(data_dir))
end)

T.run()
