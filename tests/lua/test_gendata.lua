-- fastbrain.gendata against a local OpenAI-compatible stand-in: validation, duplicates, the
-- file's own shape kept, atomic append, provider attribution.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local json = fb.json
local standin = require "tests.lua.standin"
local gendata = require "fastbrain.gendata"
local openai = require "fastbrain.providers.openai"
local fallback = require "fastbrain.fallback"

local srv = standin.start()
local keys = require("fastbrain.keys").new{getenv = function() return "sk-test-key-0000" end}
local function chain()
  return fallback.new{providers = {openai.new{name = "groq", base_url = srv.base .. "/openai/v1",
    model = "m", key_env = "GROQ_API_KEY", keys = keys, timeout = 2000}}, retries = 0}
end

local function msg(user, answer)
  return json.encode({messages = {{role = "user", content = user}, {role = "assistant", content = answer}}})
end

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

T.test("similarity and validation", function()
  T.eq(gendata.similarity("my sink is leaking badly", "my sink is leaking badly"), 1.0)
  if gendata.similarity("my sink is leaking badly today", "my sink is leaking badly") < 0.6 then error("near texts not similar") end
  if gendata.similarity("book a plumber for monday", "what are your opening hours") > 0.1 then error("different texts similar") end
  T.eq(select(2, gendata.validate({messages = {{role = "admin", content = "x"}}})),
    'messages[0].role: "admin" is not one of system, user, assistant')
  T.eq(select(2, gendata.validate({messages = {{role = "user", content = "hi"}, {role = "assistant", content = "  "}}})),
    "messages[1].content: empty")
  T.eq(select(2, gendata.validate({messages = {{role = "user", content = "hi"}}})), "no assistant answer")
  T.eq(gendata.validate({messages = {{role = "system", content = "s"}, {role = "user", content = "u"},
                                     {role = "assistant", content = "a"}}}), true)
end)

T.test("shapes convert both ways", function()
  local alpaca = {instruction = "Fix it", input = "sink", output = "Turn off the valve.", system = "S"}
  local ex = gendata.to_messages(alpaca)
  T.eq(ex.messages, {{role = "system", content = "S"}, {role = "user", content = "Fix it\n\nsink"},
                     {role = "assistant", content = "Turn off the valve."}})
  T.eq(gendata.from_messages(gendata.to_messages({conversations = {{from = "human", value = "q"},
                                                                    {from = "gpt", value = "a"}}}), "sharegpt"),
    {conversations = {{from = "human", value = "q"}, {from = "gpt", value = "a"}}})
end)

T.test("generate keeps valid new examples and says why others were dropped", function(done)
  local path = dir .. "/data.jsonl"
  local f = io.open(path, "w")
  f:write(msg("My kitchen sink is leaking under the cabinet, can someone come today?", "Yes, ...") .. "\n")
  f:write(msg("What are your opening hours on weekends?", "We are open ...") .. "\n")
  f:close()
  local reply = table.concat({
    msg("Do you fix tankless water heaters?", "We do. ..."),
    msg("My kitchen sink is leaking under the cabinet, can someone come today?", "dup"),
    msg("My kitchen sink is leaking under the cabinet, can someone come today please?", "near"),
    json.encode({messages = {{role = "boss", content = "x"}, {role = "assistant", content = "y"}}}),
    "this line is not json",
    msg("How much does it cost to unclog a drain?", ""),
    msg("Can you install a new toilet this week?", "Sure. ..."),
  }, "\n")
  srv:queue("openai", standin.openai_ok("```jsonl\n" .. reply .. "\n```"))
  fb.spawn(T.guard(done, function()
    local progress = 0
    local report = assert(gendata.generate{chain = chain(), skill = {name = "Plumber", description = "front desk"},
      data_path = path, count = 2, batch = 5, on_progress = function() progress = progress + 1 end})
    T.eq(report.kept, 2)
    T.eq(report.by_provider, {groq = 2})
    T.eq(report.dropped, {["exact duplicate"] = 1, ["near duplicate"] = 1, ["not JSON"] = 1,
      ['messages[0].role: "boss" is not one of system, user, assistant'] = 1, ["messages[1].content: empty"] = 1})
    T.eq(progress, 1)
    local lines = {}
    for line in io.lines(path) do lines[#lines + 1] = json.decode(line) end
    T.eq(#lines, 4)
    T.eq(lines[3].messages[1].content, "Do you fix tankless water heaters?")
    T.eq(lines[4].messages[1].content, "Can you install a new toilet this week?")
    local sent = srv.requests.openai[1].body
    T.matches(sent.messages[2].content, "Write 2 new, varied")
    T.matches(sent.messages[2].content, "kitchen sink")
    done()
  end))
end)

T.test("an Alpaca file gets Alpaca lines", function(done)
  local path = dir .. "/alpaca.jsonl"
  local f = io.open(path, "w")
  f:write(json.encode({instruction = "How do I reset a GFCI outlet?", input = "", output = "Press RESET."}))  -- no final newline
  f:close()
  srv:queue("openai", standin.openai_ok(msg("Why does my breaker keep tripping?", "Too much load. ...")))
  fb.spawn(T.guard(done, function()
    local report = assert(gendata.generate{chain = chain(), skill = {name = "Electrician"}, data_path = path, count = 1})
    T.eq(report.kept, 1)
    local lines = {}
    for line in io.lines(path) do lines[#lines + 1] = json.decode(line) end
    T.eq(#lines, 2)
    T.eq(lines[2], {instruction = "Why does my breaker keep tripping?", input = "", output = "Too much load. ..."})
    done()
  end))
end)

T.test("when every provider fails the file is untouched and the error reported", function(done)
  local path = dir .. "/data.jsonl"
  local before = fb.fs.read(path)
  srv:queue("openai", standin.openai_error(401, "invalid_request_error", "invalid_api_key", "Invalid API Key"))
  fb.spawn(T.guard(done, function()
    local report = assert(gendata.generate{chain = chain(), skill = {}, data_path = path, count = 3})
    T.eq(report.kept, 0)
    T.matches(report.error, "no provider could answer: groq %(auth")
    T.eq(fb.fs.read(path), before)
    done()
  end))
end)

T.test("clean up", function()
  srv:close()
  os.execute("rm -rf " .. dir)
end)

T.run()
