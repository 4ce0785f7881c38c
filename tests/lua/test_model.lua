-- fastbrain.model: load a tiny random model made by fb_make_tiny_model (arg[1]), answer prompts
-- through its chat template, with and without an adapter the trainer wrote (loaded once and
-- cached), seeded sampling repeats itself, and misuse raises while a missing model returns nil.
local T = require "tests.lua.testing"
local fb = require "fastbrain"

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute(string.format("%q %q", arg[1], tmp .. "/model")), "fb_make_tiny_model failed")
local data = tmp .. "/data.jsonl"
local f = assert(io.open(data, "w"))
for i = 1, 8 do
  f:write(fb.json.encode({messages = {{role = "user", content = "q" .. i}, {role = "assistant", content = "a" .. i}}}), "\n")
end
f:close()
local adapter = tmp .. "/adapter"
assert(fb.train.run({model = tmp .. "/model", data = data, out = adapter, max_steps = 2, lr = 0.05,
                     eval = {fraction = 0}}))

local m = assert(fb.model.load(tmp .. "/model"))

T.test("info describes the model", function()
  local info = m:info()
  T.eq(info.architecture, "LlamaForCausalLM")
  T.eq(info.hidden_size, 32)
  T.eq(info.num_hidden_layers, 2)
  T.eq(info.vocab_size, 258)
  T.eq(info.template, "chatml")
  T.eq(#info.adapters, 0)
  T.matches(tostring(m.lm), "2 layers")
end)

T.test("greedy answers are repeatable and capped by max_tokens", function()
  local a, meta = m:generate("hello", {max_tokens = 12})
  assert(a, meta)
  T.eq(m:generate("hello", {max_tokens = 12}), a)
  assert(meta.tokens <= 12 and (meta.tokens == 12 or meta.stopped), "12 tokens or a stop")
  T.eq(#meta.ids, meta.tokens)
end)

T.test("render gives the prompt generate continues: the template's text and its ids", function()
  local text, ids = m:render("hello", {system = "be brief"})
  T.matches(text, "be brief")
  T.matches(text, "hello")
  T.eq(ids, m.tokenizer:encode(text, {special = true}))
  T.raises(function() m:render("x", {max_token = 3}) end, "render: unknown option")
end)

T.test("seeded sampling repeats itself; the system message changes the prompt", function()
  local opts = {max_tokens = 16, temperature = 1.0, top_k = 20, top_p = 0.9, seed = 7}
  T.eq(m:generate("hi", opts), (m:generate("hi", opts)))
  local plain = m:generate("hi", {max_tokens = 16})
  local with_system = m:generate("hi", {max_tokens = 16, system = "Answer in French."})
  assert(type(plain) == "string" and type(with_system) == "string")
end)

T.test("an adapter changes the answer and is loaded once", function()
  local base = m:generate("q3", {max_tokens = 8})
  local tuned = assert(m:generate("q3", {max_tokens = 8, adapter = adapter}))
  T.eq(m:generate("q3", {max_tokens = 8, adapter = adapter}), tuned)
  assert(tuned ~= base, "the adapter made no difference: " .. tuned)
  T.eq(m:info().adapters, {adapter})
  local none, err = m:generate("q3", {adapter = tmp .. "/missing"})
  T.eq(none, nil)
  T.matches(err, "missing")
end)

T.test("chat streams generate's answer piece by piece, with its counts and why it ended", function()
  local want, meta = m:generate("q3", {max_tokens = 16, adapter = adapter, system = "be brief"})
  local answer = assert(m:chat({{role = "system", content = "be brief"}, {role = "user", content = "q3"}},
                               {max_tokens = 16, adapter = adapter}))
  T.eq(answer.prompt_tokens, #select(2, m:render("q3", {system = "be brief"})))
  local pieces, finish = {}
  repeat
    local piece, why = answer:next()
    pieces[#pieces + 1], finish = piece, why
  until finish
  T.eq(table.concat(pieces), want)
  T.eq(answer:text(), want)
  T.eq(answer.completion_tokens, meta.tokens)
  T.eq(finish, meta.stopped and "stop" or "length")
  T.eq(answer:next(), "")  -- an ended answer stays ended
end)

T.test("chat: a stop string ends the answer before it; a closed model ends its stream", function()
  local full = m:generate("q5", {max_tokens = 24})
  local cut = full:sub(4, 5)
  local answer = assert(m:chat({{role = "user", content = "q5"}}, {max_tokens = 24, stop_text = {cut}}))
  local text, finish = ""
  repeat
    local piece, why = answer:next()
    text, finish = text .. piece, why
  until finish
  T.eq(finish, "stop")
  T.eq(text, full:sub(1, full:find(cut, 1, true) - 1))
  local other = assert(fb.model.load(tmp .. "/model"))
  local open = assert(other:chat({{role = "user", content = "q5"}}, {max_tokens = 24}))
  other:close()
  local piece, why, err = open:next()
  T.eq(piece, nil)
  T.eq(why, "error")
  T.matches(err, "ended")
end)

T.test("misuse raises, a missing model is nil and a message", function()
  T.raises(function() m:generate("x", {max_token = 3}) end, "unknown option \"max_token\"")
  T.raises(function() m:generate("x", {top_k = "3"}) end, "opts.top_k must be a number")
  T.raises(function() m:generate("x", {temperature = -1}) end, "temperature")
  T.raises(function() m:generate("x", {template = "nope"}) end, "unknown template")
  T.raises(function() m:generate("x", {stop = {"<|nope|>"}}) end, "not a token")
  T.raises(function() m:generate(42) end, "prompt string expected")
  local none, err = fb.model.load(tmp .. "/missing")
  T.eq(none, nil)
  T.matches(err, "missing")
  local other = assert(fb.model.load(tmp .. "/model"))
  other:close()
  T.raises(function() other:generate("x") end, "model is closed")
end)

T.test("the bundled base model loads and answers through its chatml template", function()
  local tiny <close> = assert(fb.model.load(fb.root .. "/share/models/tiny"))
  local info = tiny:info()
  T.eq({info.num_hidden_layers, info.hidden_size, info.vocab_size, info.template}, {4, 256, 2050, "chatml"})
  local text = assert(tiny:generate("Do you fix leaking faucets?", {max_tokens = 8}))
  T.eq(type(text), "string")
end)

T.test("the bundled tokenizer: about 3 bytes a token on a skill's text, decoded back exactly", function()
  local tok <close> = assert(fb.tokenizer.load(fb.root .. "/share/models/tiny"))
  local text = io.open(fb.root .. "/share/skills/plumbing-receptionist/data.jsonl"):read("a")
  local ids = tok:encode(text)
  T.eq(tok:decode(ids), text)
  -- (learnt from the general corpus only: the skill's own words split into more pieces)
  T.eq(#text / #ids > 2.8, true, string.format("%.2f bytes a token", #text / #ids))
  T.eq(tok:encode("<|im_start|>user\n", {special = true})[1], 2048)
end)

T.test("train-tokenizer.py learns merges the engine loads, the same from the same text", function()
  local corpus, out = fb.root .. "/share/corpus/customer-service.txt", {tmp .. "/a.json", tmp .. "/b.json"}
  for _, path in ipairs(out) do
    assert(os.execute(string.format("python3 %q/scripts/train-tokenizer.py --vocab 300 --out %q %q >/dev/null",
      fb.root, path, corpus)))
  end
  T.eq(io.open(out[1]):read("a"), io.open(out[2]):read("a"))
  local tok <close> = assert(fb.tokenizer.load(out[1]))
  T.eq(tok:vocab_size(), 302)
  T.eq(#tok:encode(" and you"), 2)  -- two learnt words
  local sample = "Caf\u{e9} \u{1F527} new words: zebra_crossing 4567"
  T.eq(tok:decode(tok:encode(sample)), sample)
  T.eq(tok:token_id("<|im_end|>"), 301)
end)

T.test("cleanup", function()
  m:close()
  os.execute(string.format("rm -rf %q", tmp))
end)

T.run()
