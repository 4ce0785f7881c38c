-- fastbrain.ollama: each template's Go text/template, rendered as Ollama renders a chat (its
-- .Messages and .System; tests/lua/gotemplate.lua stands in for Go's text/template), equals
-- templates.render(name, messages, {add_generation_prompt = true}) byte for byte, with and
-- without a system message; the Modelfile, read back by Ollama's parser's rules, holds the
-- files, the template, one stop per end token and the system prompt; export.skill_of finds a
-- skill's system prompt. Given arguments MODELFILE TEMPLATE EOS (tests/export/ollama_cli.sh),
-- it also renders the TEMPLATE of a Modelfile that `fastbrain export --to ollama` wrote.
local T = require "tests.lua.testing"
local gotemplate = require "tests.lua.gotemplate"
local fb = require "fastbrain"
local ollama = require "fastbrain.ollama"
local templates = require "fastbrain.templates"
local export = require "fastbrain.export"

local EOS = {chatml = "<|im_end|>", qwen3 = "<|im_end|>", llama3 = "<|end_of_text|>", llama2 = "</s>",
             mistral = "</s>", plain = "<|endoftext|>"}

local SYSTEM = "You are the front desk of a plumbing company. Be brief."
local CHATS = {
  ["no system"] = {
    {role = "user", content = "My sink is leaking."},
    {role = "assistant", content = "Sorry to hear that!\nShut the valve under the sink."},
    {role = "user", content = "Done. Can someone come today?"},
  },
}
CHATS["a system message"] = {{role = "system", content = SYSTEM}, table.unpack(CHATS["no system"])}

-- What Ollama's template.Execute gives a template that uses .Messages: the messages (consecutive
-- ones of a role merged) and .System, the system messages' contents joined.
local function ollama_values(messages)
  local system, list = {}, {}
  for _, m in ipairs(messages) do
    if m.role == "system" then system[#system + 1] = m.content end
    local last = list[#list]
    if last and last.Role == m.role then last.Content = last.Content .. "\n\n" .. m.content
    else list[#list + 1] = {Role = m.role, Content = m.content} end
  end
  return {System = table.concat(system, "\n\n"), Messages = list}
end

-- A Modelfile read as Ollama's parser (parser/parser.go) reads it: commands, a value in """ runs
-- to the line that ends with """, one in " to its closing ", no escapes.
local function read_modelfile(text)
  local lines, cmds, i = {}, {}, 1
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  while lines[i] do
    local line = lines[i]
    if not (line:match("^%s*#") or line:match("^%s*$")) then
      local name, value = line:match("^(%a+)%s+(.*)$")
      assert(name, "not a command: " .. line)
      local cmd = {name = name:upper()}
      if cmd.name == "PARAMETER" then cmd.param, value = value:match("^([%w_]+)%s+(.*)$") end
      if value:sub(1, 3) == '"""' then
        while not (#value >= 6 and value:match('"""%s*$')) do
          i = i + 1
          value = value .. "\n" .. assert(lines[i], 'unclosed """')
        end
        value = value:match('^"""(.*)"""%s*$')
      elseif value:sub(1, 1) == '"' then
        value = assert(value:match('^"(.*)"%s*$'), "unclosed quote")
      end
      cmd.value = value
      cmds[#cmds + 1] = cmd
    end
    i = i + 1
  end
  return cmds
end

local function values_of(cmds, name)
  local list = {}
  for _, c in ipairs(cmds) do if c.name == name then list[#list + 1] = c.value end end
  return list
end

-- The template renders every conversation templates.render takes as it does.
local function renders_as_fastbrain(go_template, name, eos)
  for what, messages in pairs(CHATS) do
    local want = templates.render(name, messages, {add_generation_prompt = true, eos = eos})
    if want then
      T.eq(gotemplate.render(go_template, ollama_values(messages)), want, name .. ", " .. what)
    end
  end
end

T.test("the stand-in for Go's text/template: trim markers, else if, range with $i, and, len", function()
  local src = 'a  {{- if eq 1 2 }}x{{ else if and "" 1 }}y{{ else }}z{{ end -}}  \n ' ..
              '{{ range $i, $_ := .L }}{{ $i }}{{ . }}{{ end }}{{ len .L }}{{ if and .L (ne $.S "") }}!{{ end }}'
  T.eq(gotemplate.render(src, {L = {"p", "q"}, S = "s"}), "az0p1q2!")
  T.raises(function() gotemplate.render("{{ index .L 0 }}", {L = {}}) end, "unsupported")
end)

T.test("each template renders a chat with and without a system message as fastbrain does", function()
  for _, name in ipairs(templates.names) do
    T.eq(EOS[name] ~= nil, true, name .. " has a test end token")
    renders_as_fastbrain(ollama.template(name, EOS[name]), name, EOS[name])
  end
  -- and each conversation was compared for all but Mistral's with a system message
  T.eq(templates.render("mistral", CHATS["a system message"]), nil)
end)

T.test("Mistral, which has no system role, gets the system prompt before the first question", function()
  local first = {{role = "user", content = SYSTEM .. "\n\n" .. CHATS["no system"][1].content},
                 table.unpack(CHATS["no system"], 2)}
  T.eq(gotemplate.render(ollama.template("mistral"), ollama_values(CHATS["a system message"])),
       templates.render("mistral", first, {add_generation_prompt = true}))
end)

T.test("the Modelfile holds the files, the template, one stop per end token and SYSTEM", function()
  local system = 'Answer as "Pat" from the front desk.\n  Keep it short. '
  local stops = {chatml = {"<|im_end|>"}, qwen3 = {"<|im_end|>"}, llama3 = {"<|eot_id|>", "<|end_of_text|>"},
                 llama2 = {"</s>"}, mistral = {"</s>"}, plain = {"<|endoftext|>"}}
  for _, name in ipairs(templates.names) do
    local text = assert(ollama.modelfile{base = "base.gguf", adapter = "adapter.gguf", template = name,
                                         eos = EOS[name], system = system})
    local cmds = read_modelfile(text)
    T.eq(values_of(cmds, "FROM"), {"./base.gguf"}, name)
    T.eq(values_of(cmds, "ADAPTER"), {"./adapter.gguf"}, name)
    T.eq(values_of(cmds, "TEMPLATE"), {ollama.template(name, EOS[name])}, name)
    T.eq(values_of(cmds, "PARAMETER"), stops[name], name)
    T.eq(values_of(cmds, "SYSTEM"), {system}, name)
    for _, c in ipairs(cmds) do
      if c.name == "PARAMETER" then T.eq(c.param, "stop") end
    end
  end
end)

T.test("no SYSTEM without a system prompt; one Ollama cannot quote is refused", function()
  for _, system in ipairs({false, ""}) do
    local text = assert(ollama.modelfile{base = "b.gguf", adapter = "a.gguf", template = "chatml",
                                         eos = "<|im_end|>", system = system or nil})
    T.eq(values_of(read_modelfile(text), "SYSTEM"), {})
  end
  local text, err = ollama.modelfile{base = "b.gguf", adapter = "a.gguf", template = "chatml",
                                     system = 'Say """hi"""'}
  T.eq(text, nil)
  T.matches(err, 'the system prompt holds """')
  T.raises(function() ollama.template("vicuna") end, "unknown template vicuna")
  T.raises(function() ollama.template("plain") end, "needs the tokenizer's end token")
end)

T.test("skill_of: an adapter in DATA/adapters/SKILL/VERSION has DATA/skills/SKILL's prompt", function()
  local data = os.tmpname()
  os.remove(data)
  assert(fb.fs.mkdir_p(data .. "/skills/front-desk"))
  assert(fb.fs.mkdir_p(data .. "/adapters/front-desk/20260101-120000"))
  assert(fb.fs.write_atomic(data .. "/skills/front-desk/skill.json", fb.json.encode{name = "Front desk", system = SYSTEM}))
  local ok, err = pcall(function()
    T.eq(export.skill_of(data .. "/adapters/front-desk/20260101-120000").system, SYSTEM)
    T.eq(export.skill_of(data .. "/adapters/front-desk/20260101-120000/").system, SYSTEM, "a trailing /")
    T.eq(export.skill_of(data .. "/adapters/other/v1"), nil, "no such skill")
    T.eq(export.skill_of(data .. "/skills/front-desk"), nil, "not an adapter's place")
  end)
  fb.fs.remove_tree(data)
  assert(ok, err)
end)

if arg[1] then
  T.test("the Modelfile " .. arg[1] .. " renders as fastbrain's " .. arg[2] .. " template", function()
    local f = assert(io.open(arg[1], "rb"))
    local cmds = read_modelfile(f:read("a"))
    f:close()
    local template = values_of(cmds, "TEMPLATE")
    T.eq(#template, 1, "one TEMPLATE")
    renders_as_fastbrain(template[1], arg[2], arg[3])
  end)
end

T.run()
