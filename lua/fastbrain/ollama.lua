-- fastbrain.ollama: the text of an Ollama model directory that `fastbrain export --to ollama`
-- writes beside the base's GGUF and the adapter's GGUF LoRA: the Modelfile, with fastbrain's chat
-- template rewritten in Ollama's Go text/template syntax, and a README. It writes no files.
--   template(name [, eos]) -> the TEMPLATE body for a fastbrain.templates name (eos: the
--     tokenizer's end token, which the plain template writes after each answer)
--   stops(name, eos) -> the end tokens, one PARAMETER stop each: the template's and the tokenizer's
--   modelfile{base =, adapter =, template =, eos =, system =} -> text | nil, err
--     base and adapter: the GGUF files' names beside the Modelfile; system: the skill's system
--     prompt (nil or "": no SYSTEM line)
--   readme{name =, base =, adapter =, template =, system =} -> the README's text
-- Each template renders Ollama's .Messages (system turns included: Ollama puts SYSTEM first when
-- a request has none) as templates.render(name, messages, {add_generation_prompt = true}) does,
-- for conversations of user, assistant and system turns whose contents have no white space at
-- either end (llama2 and llama3 strip it; a Go template cannot) and whose qwen3 answers carry no
-- <think> block. Mistral has no system role: SYSTEM is put before the first user message.
local templates = require "fastbrain.templates"

local M = {}

-- One Go template per name; @EOS@ is the tokenizer's end token (plain). The generation prompt
-- is written after the last message, as add_generation_prompt does.
local CHATML = [[
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
]]

local GO = {
  chatml = CHATML,
  qwen3 = CHATML,
  llama3 = [[
<|begin_of_text|>
{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

]],
  -- the system prompt opens the first user message (index 1, after the system message)
  llama2 = [[
{{- range $i, $_ := .Messages }}
{{- if eq .Role "user" }}<s>[INST] {{ if and $.System (eq $i 1) }}<<SYS>>
{{ $.System }}
<</SYS>>

{{ end }}{{ .Content }} [/INST]
{{- else if eq .Role "assistant" }} {{ .Content }} </s>
{{- end }}
{{- end }}]],
  mistral = [[
<s>
{{- range $i, $_ := .Messages }}
{{- if eq .Role "user" }}[INST] {{ if and $.System (eq $i 1) }}{{ $.System }}

{{ end }}{{ .Content }} [/INST]
{{- else if eq .Role "assistant" }}{{ .Content }}</s>
{{- end }}
{{- end }}]],
  plain = [[
{{- range .Messages }}
{{- if eq .Role "system" }}{{ .Content }}

{{ else if eq .Role "user" }}### Instruction:
{{ .Content }}

### Response:
{{ else if eq .Role "assistant" }}{{ .Content }}@EOS@

{{ end }}
{{- end }}]],
}

function M.template(name, eos)
  local t = GO[name]
  if not t then error("ollama.template: unknown template " .. tostring(name), 2) end
  if t:find("@EOS@", 1, true) then
    if type(eos) ~= "string" then error("ollama.template: the " .. name .. " template needs the tokenizer's end token", 2) end
    t = t:gsub("@EOS@", function() return eos end)
  end
  return t
end

function M.stops(name, eos)
  local list, seen = {}, {}
  for _, s in ipairs({templates.eos(name) or false, eos or false}) do
    if s and s ~= "" and not seen[s] then seen[s], list[#list + 1] = true, s end
  end
  return list
end

-- Ollama's Modelfile has no escapes: a value runs from """ to the next """ at a line's end.
local function quoted(what, s)
  if s:find('"""', 1, true) then return nil, what .. ' holds """, which a Modelfile cannot quote' end
  return '"""' .. s .. '"""'
end

function M.modelfile(o)
  local template, err = quoted("the template", M.template(o.template, o.eos))
  if not template then return nil, err end
  local lines = {
    "# Written by `fastbrain export --to ollama`: the base model, the LoRA adapter on it, and the",
    ("# %s chat template the adapter was trained with. ollama create NAME -f Modelfile"):format(o.template),
    "FROM ./" .. o.base,
    "ADAPTER ./" .. o.adapter,
    "TEMPLATE " .. template,
  }
  for _, s in ipairs(M.stops(o.template, o.eos)) do
    if s:find('"', 1, true) or s:find("%s") then return nil, ("the end token %q cannot be a stop parameter"):format(s) end
    lines[#lines + 1] = ('PARAMETER stop "%s"'):format(s)
  end
  if o.system and o.system ~= "" then
    local system
    system, err = quoted("the system prompt", o.system)
    if not system then return nil, err end
    lines[#lines + 1] = "SYSTEM " .. system
  end
  return table.concat(lines, "\n") .. "\n"
end

function M.readme(o)
  local lines = {
    ("# %s for Ollama\n"):format(o.name),
    ("The base model as GGUF (`%s`), the LoRA adapter as a GGUF LoRA (`%s`) and a `Modelfile`"):format(o.base, o.adapter),
    ("that puts them together with the %s chat template the adapter was trained with%s."):format(o.template,
      o.system and o.system ~= "" and " and its system prompt" or ""),
    "In this directory:\n",
    "```sh",
    ("ollama create %s -f Modelfile"):format(o.name),
    ("ollama run %s"):format(o.name),
    "```\n",
    "`ollama create` copies both files into Ollama's store; this directory can go afterwards.",
  }
  return table.concat(lines, "\n") .. "\n"
end

return M
