-- fastbrain.templates: chat templates in Lua. render() turns a conversation into the text a
-- model sees plus the byte spans of the assistant turns (each span covers the answer and its
-- end-of-turn token, which is what training puts the loss on). Templates: chatml (Qwen2.5,
-- SmolLM), qwen3, llama3, llama2 ([INST] with <<SYS>>), mistral ([INST], no system role) and
-- plain ("### Instruction / ### Response" for base models). It does not tokenize.
local M = {}

local concat, insert = table.concat, table.insert

M.names = {"chatml", "qwen3", "llama3", "llama2", "mistral", "plain"}

-- Python's str.strip() on ASCII white space, and its one-sided forms.
local function strip(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end
local function lstrip_nl(s) return (s:gsub("^\n+", "")) end
local function strip_nl(s) return (s:gsub("^\n+", ""):gsub("\n+$", "")) end

-- A buffer that records where assistant spans start and end (0-based, end exclusive).
local function buffer()
  local b = {parts = {}, len = 0, spans = {}}
  function b.put(s) b.parts[#b.parts + 1] = s; b.len = b.len + #s end
  function b.answer(s) local start = b.len; b.put(s); insert(b.spans, {start, b.len}) end
  function b.result() return concat(b.parts), b.spans end
  return b
end

local function alternate(name, messages, first)
  for i = first, #messages do
    local want = (i - first) % 2 == 0 and "user" or "assistant"
    if messages[i].role ~= want then
      return nil, string.format("%s: conversation roles must alternate user/assistant/... " ..
        "(message %d is %s)", name, i, messages[i].role)
    end
  end
  return true
end

local T = {}

T.chatml = {eos = "<|im_end|>", render = function(b, messages, opts)
  for _, m in ipairs(messages) do
    b.put("<|im_start|>" .. m.role .. "\n")
    if m.role == "assistant" then b.answer(m.content .. "<|im_end|>") else b.put(m.content .. "<|im_end|>") end
    b.put("\n")
  end
  if opts.add_generation_prompt then b.put("<|im_start|>assistant\n") end
  return true
end}

-- Qwen3 (no tools): assistant turns after the last user message carry a <think> block, empty
-- when the message has none; "</think>" inside content splits reasoning from the answer.
T.qwen3 = {eos = "<|im_end|>", render = function(b, messages, opts)
  local last_query = #messages
  for i = #messages, 1, -1 do
    local m = messages[i]
    if m.role == "user" and not (m.content:sub(1, 15) == "<tool_response>" and
                                 m.content:sub(-16) == "</tool_response>") then
      last_query = i
      break
    end
  end
  for i, m in ipairs(messages) do
    if m.role == "system" and i == 1 then
      b.put("<|im_start|>system\n" .. m.content .. "<|im_end|>\n")
    elseif m.role == "user" or m.role == "system" then
      b.put("<|im_start|>" .. m.role .. "\n" .. m.content .. "<|im_end|>\n")
    elseif m.role == "assistant" then
      local content, reasoning = m.content, m.reasoning_content or ""
      local first = not m.reasoning_content and content:find("</think>", 1, true)
      if first then  -- reasoning before the first </think>, the answer after the last
        local last = first
        while true do
          local nxt = content:find("</think>", last + 1, true)
          if not nxt then break end
          last = nxt
        end
        reasoning = content:sub(1, first - 1):gsub("\n+$", "")
        reasoning = lstrip_nl(reasoning:match("^.*<think>(.*)$") or reasoning)
        content = lstrip_nl(content:sub(last + 8))
      end
      b.put("<|im_start|>assistant\n")
      if i > last_query and (i == #messages or reasoning ~= "") then
        b.answer("<think>\n" .. strip_nl(reasoning) .. "\n</think>\n\n" .. lstrip_nl(content) .. "<|im_end|>")
      else
        b.answer(content .. "<|im_end|>")
      end
      b.put("\n")
    else
      return nil, "qwen3: role " .. tostring(m.role) .. " is not supported"
    end
  end
  if opts.add_generation_prompt then
    b.put("<|im_start|>assistant\n")
    if opts.enable_thinking == false then b.put("<think>\n\n</think>\n\n") end
  end
  return true
end}

T.llama3 = {eos = "<|eot_id|>", render = function(b, messages, opts)
  b.put("<|begin_of_text|>")
  for _, m in ipairs(messages) do
    b.put("<|start_header_id|>" .. m.role .. "<|end_header_id|>\n\n")
    local text = strip(m.content) .. "<|eot_id|>"
    if m.role == "assistant" then b.answer(text) else b.put(text) end
  end
  if opts.add_generation_prompt then b.put("<|start_header_id|>assistant<|end_header_id|>\n\n") end
  return true
end}

T.llama2 = {eos = "</s>", render = function(b, messages)
  local first, system = 1, nil
  if messages[1] and messages[1].role == "system" then first, system = 2, messages[1].content end
  local ok, err = alternate("llama2", messages, first)
  if not ok then return nil, err end
  for i = first, #messages do
    local m = messages[i]
    local content = m.content
    if i == first and system then content = "<<SYS>>\n" .. system .. "\n<</SYS>>\n\n" .. content end
    if m.role == "user" then b.put("<s>[INST] " .. strip(content) .. " [/INST]")
    else b.answer(" " .. strip(content) .. " </s>") end
  end
  return true
end}

T.mistral = {eos = "</s>", render = function(b, messages)
  local ok, err = alternate("mistral", messages, 1)
  if not ok then return nil, err .. " (Mistral has no system role)" end
  b.put("<s>")
  for _, m in ipairs(messages) do
    if m.role == "user" then b.put("[INST] " .. m.content .. " [/INST]")
    else b.answer(m.content .. "</s>") end
  end
  return true
end}

-- For base models: the end token is the tokenizer's (opts.eos), so the model learns to stop.
T.plain = {render = function(b, messages, opts)
  for _, m in ipairs(messages) do
    if m.role == "system" then b.put(m.content .. "\n\n")
    elseif m.role == "user" then b.put("### Instruction:\n" .. m.content .. "\n\n### Response:\n")
    else b.answer(m.content .. opts.eos); b.put("\n\n") end
  end
  return true
end}

local function known_list() return concat(M.names, ", ") end

local function check_messages(messages)
  if type(messages) ~= "table" then return "messages: a list expected" end
  for i, m in ipairs(messages) do
    if type(m) ~= "table" or type(m.content) ~= "string" or
       (m.role ~= "system" and m.role ~= "user" and m.role ~= "assistant") then
      return string.format("messages[%d]: expected {role = system|user|assistant, content = string}", i)
    end
  end
end

-- render(name, messages [, opts]) -> text, spans | nil, err
-- opts: add_generation_prompt (append the assistant header), eos (plain: the end token),
-- enable_thinking (qwen3). spans: list of {start, stop}, 0-based byte offsets, stop exclusive.
-- An unknown name or malformed messages raise; a conversation the template refuses (roles
-- that do not alternate, a system turn for Mistral) returns nil and the reason.
function M.render(name, messages, opts)
  local t = T[name]
  if not t then error("templates.render: unknown template " .. tostring(name) .. " (known: " .. known_list() .. ")", 2) end
  local bad = check_messages(messages)
  if bad then error("templates.render: " .. bad, 2) end
  opts = opts or {}
  if name == "plain" and type(opts.eos) ~= "string" then
    error("templates.render: the plain template needs opts.eos, the tokenizer's end token", 2)
  end
  local b = buffer()
  local ok, err = t.render(b, messages, opts)
  if not ok then return nil, err end
  return b.result()
end

-- What is wrong with name as a template's -> nil | "must be one of chatml, ..."
function M.name_problem(name)
  if T[name] == nil then return "must be one of " .. known_list() end
end

-- The end-of-turn token a template writes after each answer (nil for plain: the tokenizer's).
function M.eos(name) return T[name] and T[name].eos end

-- Recognise a Jinja chat_template (from tokenizer_config.json) -> name | nil, err.
function M.detect(chat_template)
  if type(chat_template) ~= "string" then
    return nil, "no chat_template to recognise (known templates: " .. known_list() .. ")"
  end
  local has = function(s) return chat_template:find(s, 1, true) ~= nil end
  if has("<|im_start|>") then return has("<think>") and "qwen3" or "chatml" end
  if has("<|start_header_id|>") then return "llama3" end
  if has("<<SYS>>") then return "llama2" end
  if has("[INST]") then return "mistral" end
  return nil, "unrecognised chat_template (known templates: " .. known_list() .. ")"
end

-- The template of a tokenizer_config.json table (its chat_template, or the "default" entry of a
-- list of named templates) -> name | nil, err.
function M.from_config(config)
  local ct = type(config) == "table" and config.chat_template
  if type(ct) == "table" then
    for _, entry in ipairs(ct) do
      if type(entry) == "table" and entry.name == "default" then ct = entry.template end
    end
  end
  return M.detect(type(ct) == "string" and ct or nil)
end

return M
