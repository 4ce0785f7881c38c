-- fastbrain.train: in-process runs on a tiny random model made by fb_make_tiny_model (arg[1]):
-- hooks see every kind of event, a hook can stop the run early with its output, the summary
-- comes back, and a missing data file is an error naming it; the spec's fields as the trainer
-- describes and checks them for a request.
local T = require "tests.lua.testing"
local fb = require "fastbrain"

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute(string.format("%q %q", arg[1], tmp .. "/model")), "fb_make_tiny_model failed")
local data = tmp .. "/data.jsonl"
local words = {"red", "blue", "green", "gold", "gray", "pink", "teal", "navy", "rose", "jade"}
local f = assert(io.open(data, "w"))
for i = 0, 19 do
  f:write(fb.json.encode({messages = {{role = "user", content = "item " .. i},
    {role = "assistant", content = words[i % 10 + 1] .. " " .. words[i // 10 + 1]}}}), "\n")
end
f:close()

local function spec(out, extra)
  local s = {model = tmp .. "/model", data = data, out = tmp .. "/" .. out, epochs = 3, lr = 0.01,
             eval = {fraction = 0.1, interval = 10}, samples = {prompts = {"item 3"}, interval = 20}}
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

T.test("a run calls every hook and returns the summary", function()
  local n = {progress = 0, eval = 0, sample = 0, all = 0}
  local last
  local summary, err = fb.train.run(spec("a"), {
    on_progress = function(ev) n.progress = n.progress + 1; last = ev end,
    on_eval = function(ev) n.eval = n.eval + 1; T.eq(type(ev.eval_loss), "number") end,
    on_sample = function(ev) n.sample = n.sample + 1; T.eq(ev.prompt, "item 3") end,
    on_event = function() n.all = n.all + 1 end})
  assert(summary, err)
  T.eq(n.progress, 54)  -- 18 training examples x 3 epochs, batch 1 in small-data mode
  T.eq(last.step, 54)
  T.eq(n.eval, 7)  -- the base's before the first step, then every 10 steps and the last
  T.eq(n.sample, 3)  -- steps 20, 40 and the last
  T.eq(summary.steps, 54)
  T.eq(summary.examples, 18)
  T.eq(summary.eval_examples, 2)
  assert(summary.eval_loss < summary.base_eval_loss, "the adapter beats the base on held-out examples")
  assert(summary.final_loss_smoothed < summary.spec.lr * 1000, "loss fell")
  assert(summary.dataset_hash:match("^fnv1a64:%x+$"), summary.dataset_hash)
  assert(n.all > n.progress + n.eval + n.sample)
  local cfg = fb.json.decode(assert(io.open(tmp .. "/a/adapter_config.json")):read("a"))
  T.eq(cfg.r, 16)
end)

T.test("a hook that returns stop ends the run with its output", function()
  local summary = assert(fb.train.run(spec("b"), {on_progress = function(ev)
    if ev.step == 5 then return "stop" end
  end}))
  T.eq(summary.steps, 5)
  assert(io.open(tmp .. "/b/adapter_model.safetensors"), "the adapter was written")
end)

T.test("a hooks file stops the run and changes the learning rate", function()
  local path = tmp .. "/hooks.lua"
  local h = assert(io.open(path, "w"))
  h:write(string.format([[
local M = {}
function M.on_step(state)
  if state.step == 2 then return 0.005 end
  if state.step == 6 then return "stop" end
end
function M.on_done(summary)
  local f = assert(io.open(%q, "w"))
  f:write(summary.steps)
  f:close()
end
return M
]], tmp .. "/done"))
  h:close()
  local lrs = {}
  local summary = assert(fb.train.run(spec("e", {hooks = path, schedule = "constant", warmup = 0}),
    {on_progress = function(ev) lrs[ev.step] = ev.lr end}))
  T.eq(summary.steps, 6)
  T.eq(lrs[2], 0.01)
  T.eq(lrs[3], 0.005)
  T.eq(assert(io.open(tmp .. "/done")):read("a"), "6")
end)

T.test("examples and prompts longer than the model's context are cut to fit", function()
  local long = tmp .. "/long.jsonl"
  local lf = assert(io.open(long, "w"))
  for i = 1, 4 do
    lf:write(fb.json.encode({messages = {{role = "user", content = ("question %d "):format(i):rep(20)},
      {role = "assistant", content = ("answer "):rep(40)}}}), "\n")
  end
  lf:close()
  local summary = assert(fb.train.run(spec("f", {data = long, max_steps = 2,
    samples = {prompts = {("x"):rep(250)}, interval = 1}})))
  T.eq(summary.steps, 2)
  T.eq(summary.tokens, 2 * 4 * 256)  -- every example cut to the model's 256 positions
end)

T.test("a small model's default learning rate is 5e-3 and epochs 6, given ones are kept", function()
  local s = spec("lr")  -- the tiny model's hidden size is 32
  s.lr, s.epochs = nil, nil
  local summary = assert(fb.train.run(s))
  T.eq({summary.spec.lr, summary.spec.epochs, summary.steps}, {5e-3, 6, 6 * 18 // 2})  -- batches of 2
  T.eq(assert(fb.train.run(spec("lr2", {max_steps = 2}))).spec.lr, 0.01)
end)

T.test("sample prompts are asked after the spec's system prompt, as the skill's users ask", function()
  local tok = require("fastbrain.tokenizer")
  local with = assert(fb.train.prepare(spec("p1", {samples = {prompts = {"item 3"}, system = "Answer in colours."}})))
  local without = assert(fb.train.prepare(spec("p2")))
  local text = assert(tok.load(tmp .. "/model")):decode(with.prompts[1].ids)
  T.matches(text, "Answer in colours%..*item 3")
  T.eq(#without.prompts[1].ids < #with.prompts[1].ids, true)
end)

T.test("a missing data file is an error naming it", function()
  local summary, err, where = fb.train.run(spec("c", {data = tmp .. "/nope.jsonl"}))
  T.eq(summary, nil)
  assert(err:find("nope.jsonl", 1, true), err)
  T.eq(where, tmp .. "/nope.jsonl")
end)

T.test("a bad spec raises naming the field", function()
  local ok, err = pcall(fb.train.run, spec("d", {lora = {r = 0}}))
  T.eq(ok, false)
  assert(err:find("spec.lora.r: must be an integer 1..256 (got 0)", 1, true), err)
end)

T.test("a request's part of a spec is checked by the trainer's table, every problem at once", function()
  T.eq(fb.train.check_request({lr = 0.001, lora = {r = 8}, template = "chatml"}), nil)
  T.eq(fb.train.check_request({epochs = 0, lora = {r = 300}, data = "x.jsonl", template = "vicuna", colour = 1}), {
    epochs = "must be an integer 1..10000 (got 0)", ["lora.r"] = "must be an integer 1..256 (got 300)",
    data = "set by the server", template = "must be one of chatml, qwen3, llama3, llama2, mistral, plain",
    colour = "unknown field"})
  T.eq(fb.train.check_request({template = 7}), {template = "must be a string"})
  T.eq(fb.train.check_request(fb.json.array{1}), {body = "must be an object"})
end)

T.test("every field the trainer describes is in docs/training.md", function()
  local doc = assert(fb.fs.read(fb.root .. "/docs/training.md"))
  local names = {}
  for _, field in ipairs(fb.train.fields()) do
    names[#names + 1] = field.name
    assert(doc:find("`" .. field.name .. "`", 1, true), "docs/training.md does not name spec field " .. field.name)
    assert(field.doc ~= "" and (field.set_by == "request" or field.set_by == "server"), field.name)
  end
  T.eq(#names, 37)
  T.eq({names[1], names[#names]}, {"model", "select_max_tokens"})
end)

T.test("cleanup", function() os.execute(string.format("rm -rf %q", tmp)) end)

T.run()
