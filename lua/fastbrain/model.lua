-- fastbrain.model: a base model for scripts: load(name) -> m with m:generate(prompt, opts),
-- m:info(), m:close(). A model is named by its directory or, in the Hugging Face cache, by
-- ORG/NAME[@REVISION] (locate). A prompt is rendered with the chat template (opts.template, else
-- the one tokenizer_config.json names), tokenized, continued by the engine (fastbrain.model.core,
-- adapters loaded once per model) until the template's end token, and decoded.
--   main(args) -> exit status: the body of `fastbrain generate`.
local json = require "fastbrain.json"
local lm = require "fastbrain.model.core"
local templates = require "fastbrain.templates"
local reply = require "fastbrain.reply"
local tokenizer = require "fastbrain.tokenizer"

local M = {}

-- locate(name) -> dir, commit | nil, err: a model directory (commit ""), or the snapshot of
-- ORG/NAME[@REVISION] in the Hugging Face cache, offline.
M.locate = lm.locate

-- A JSON file's value, or nil when it is missing or not JSON (a model directory's optional files).
function M.read_json(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(json.decode, text)
  return ok and v or nil
end

-- The template a model directory implies (or `name`, checked) and its tokenizer's end token
-- -> name, eos | nil, err
function M.template(dir, name)
  local config = M.read_json(dir .. "/tokenizer_config.json") or {}
  local eos = config.eos_token
  if type(eos) == "table" then eos = eos.content end
  if name and name ~= "" then
    for _, known in ipairs(templates.names) do
      if known == name then return name, eos end
    end
    return nil, string.format("unknown template %q (known: %s)", name, table.concat(templates.names, ", "))
  end
  local detected, err = templates.from_config(config)
  if not detected then return nil, dir .. "/tokenizer_config.json: " .. err .. " (give a template)" end
  return detected, eos
end

local Model = {}
Model.__index = Model

local options = {adapter = "string", max_tokens = "number", temperature = "number", top_k = "number",
                 top_p = "number", seed = "number", repetition_penalty = "number", stop = "table",
                 template = "string", system = "string", stop_text = "table", ignore_eos = "boolean"}

local function check_opts(opts, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("fastbrain.model: " .. what .. ": options table expected", 3) end
  for k, v in pairs(opts) do
    if not options[k] then error(string.format("fastbrain.model: %s: unknown option %q", what, tostring(k)), 3) end
    if type(v) ~= options[k] then
      error(string.format("fastbrain.model: %s: opts.%s must be a %s", what, k, options[k]), 3)
    end
  end
  return opts
end

-- The ids of the end tokens: the template's, the tokenizer's (unless ignore_eos: a benchmark
-- or a test that needs an answer of a given length), plus opts.stop (strings).
local function stop_ids(self, template, stop, ignore_eos)
  local ids, seen = {}, {}
  local function add(s)
    local id = s and self.tokenizer:token_id(s)
    if id and not seen[id] then seen[id] = true; ids[#ids + 1] = id end
  end
  if not ignore_eos then
    add(templates.eos(template))
    add(self.eos)
  end
  for _, s in ipairs(stop or {}) do
    local id = self.tokenizer:token_id(s)
    if not id then error(string.format("fastbrain.model: generate: stop %q is not a token of this model", s), 3) end
    add(s)
  end
  return ids
end

-- The conversation as the chat template writes it, ready for the answer, and its ids
-- -> text, ids, template | nil, err; errors raised at the caller of m:<what>.
local function render_messages(self, what, messages, opts)
  if self.closed then error("fastbrain.model: " .. what .. ": model is closed", 3) end
  local template, eos = self.template, self.eos
  if opts.template then
    template, eos = M.template(self.dir, opts.template)
    if not template then error("fastbrain.model: " .. what .. ": " .. eos, 3) end
  end
  local text, err = templates.render(template, messages, {add_generation_prompt = true, eos = eos})
  if not text then return nil, err end
  return text, self.tokenizer:encode(text, {special = true}), template
end

-- One prompt, after opts.system when there is one.
local function render(self, what, prompt, opts)
  if type(prompt) ~= "string" then error("fastbrain.model: " .. what .. ": prompt string expected", 3) end
  local messages = {}
  if opts.system then messages[1] = {role = "system", content = opts.system} end
  messages[#messages + 1] = {role = "user", content = prompt}
  return render_messages(self, what, messages, opts)
end

-- m:render(prompt, opts) -> text, ids | nil, err: the prompt as generate gives it to the model
-- (opts.template and opts.system as there).
function Model:render(prompt, opts)
  local text, ids = render(self, "render", prompt, check_opts(opts, "render"))
  return text, ids
end

-- m:generate(prompt, opts) -> text, {tokens =, stopped =, ids =} | nil, err
-- opts: adapter (dir), max_tokens (128), temperature (0: greedy), top_k, top_p, seed,
-- repetition_penalty, stop (token strings), template, system. ids: the new tokens, before the stop.
local function engine_opts(self, opts, template)
  return {adapter = opts.adapter, max_tokens = opts.max_tokens, temperature = opts.temperature,
          top_k = opts.top_k, top_p = opts.top_p, seed = opts.seed,
          repetition_penalty = opts.repetition_penalty, stop = stop_ids(self, template, opts.stop, opts.ignore_eos)}
end

function Model:generate(prompt, opts)
  opts = check_opts(opts, "generate")
  local text, ids, template = render(self, "generate", prompt, opts)
  if not text then return nil, ids end
  local out, stopped = self.lm:generate(ids, engine_opts(self, opts, template))
  if not out then return nil, stopped end
  return self.tokenizer:decode(out, {skip_special = true}), {tokens = #out, stopped = stopped, ids = out}
end

local Answer = {}
Answer.__index = Answer

-- m:chat(messages, opts) -> answer | nil, err: the answer to a conversation ({{role =, content =},
-- ...}, system first if any), token by token: the prompt is read before chat returns, then
-- answer:next() -> piece, finish: the text one more token adds (may be ""), and once the answer
-- has ended why ("stop": an end token or a stop string; "length": max_tokens); or nil, "error",
-- err. opts as generate's (not system: it is in messages) plus stop_text, strings that end the
-- answer where they first appear (not part of it). answer.prompt_tokens,
-- answer.completion_tokens and answer:text() (so far) say what it did.
function Model:chat(messages, opts)
  opts = check_opts(opts, "chat")
  if type(messages) ~= "table" then error("fastbrain.model: chat: messages list expected", 2) end
  local text, ids, template = render_messages(self, "chat", messages, opts)
  if not text then return nil, ids end
  local stream, err = self.lm:stream(ids, engine_opts(self, opts, template))
  if not stream then return nil, err end
  local tok = self.tokenizer
  return setmetatable({stream = stream, prompt_tokens = #ids, completion_tokens = 0,
                       reply = reply.new(function(out) return tok:decode(out, {skip_special = true}) end,
                                         opts.stop_text)}, Answer)
end

function Answer:next()
  if self.finished then return "", self.finished end
  local id, finish, err = self.stream:next()
  if not id then
    self.finished = finish
    if finish == "error" then return nil, finish, err end
    return self.reply:finish(), finish
  end
  self.completion_tokens = self.completion_tokens + 1
  local piece, stopped = self.reply:push(id)
  if stopped then
    self.finished = "stop"
    self.stream:close()
  end
  return piece, self.finished
end

function Answer:close() self.stream:close() end
Answer.__close = Answer.close

-- The text so far.
function Answer:text() return self.reply.text end

-- m:info() -> the model's shape, its name, directory, revision (the cache's commit, or "") and
-- template, the adapters loaded so far
function Model:info()
  local t = self.lm:info()
  t.name, t.dir, t.revision, t.template = self.name, self.dir, self.revision, self.template
  return t
end

function Model:close()
  self.closed = true
  self.lm:close()
  self.tokenizer:close()
end
Model.__close = Model.close

-- load(name [, {template =, device =}]) -> model | nil, err
-- name: a directory or ORG/NAME[@REVISION]; device: "auto" (the default: the GPU when one is
-- usable, else the CPU), "cpu" or "cuda".
local devices = {auto = true, cpu = true, cuda = true}
function M.load(name, opts)
  if type(name) ~= "string" then error("fastbrain.model.load: a model name expected", 2) end
  local device = opts and opts.device or "auto"
  if not devices[device] then
    error(string.format("fastbrain.model.load: device %q is not one of auto, cpu, cuda", tostring(device)), 2)
  end
  local dir, revision = M.locate(name)
  if not dir then return nil, revision end
  local template, eos = M.template(dir, opts and opts.template)
  if not template then return nil, eos end
  local tok, err = tokenizer.load(dir)
  if not tok then return nil, err end
  local m, lerr = lm.load(dir, device)
  if not m then
    tok:close()
    return nil, lerr
  end
  return setmetatable({name = name, dir = dir, revision = revision, template = template, eos = eos,
                       tokenizer = tok, lm = m}, Model)
end

local usage = [[
usage: fastbrain generate --model DIR --prompt TEXT [options]

Answer one prompt with a base model (and a LoRA adapter), using the model's chat template.

options:
  --adapter DIR       a PEFT adapter directory (fastbrain train's output)
  --template NAME     chat template (default: from the model's tokenizer_config.json)
  --system TEXT       a system message before the prompt
  --max-tokens N      new tokens at most (default 128)
  --temperature X     0 is greedy (the default)
  --top-k K  --top-p P  --seed S  --repetition-penalty X
  --device D          auto (the GPU when one is usable, else the CPU), cpu or cuda
  --ids               print the new token ids (space-separated, before the end token), not text
]]

local flags = {["--model"] = {"model", "s"}, ["--prompt"] = {"prompt", "s"}, ["--adapter"] = {"adapter", "s"},
               ["--template"] = {"template", "s"}, ["--system"] = {"system", "s"},
               ["--max-tokens"] = {"max_tokens", "i"}, ["--temperature"] = {"temperature", "n"},
               ["--top-k"] = {"top_k", "i"}, ["--top-p"] = {"top_p", "n"}, ["--seed"] = {"seed", "i"},
               ["--repetition-penalty"] = {"repetition_penalty", "n"}, ["--device"] = {"device", "s"},
               ["--ids"] = {"ids", "b"}}

local function bad_usage(msg)
  io.stderr:write("fastbrain generate: ", msg, "\n", usage)
  return 2
end

-- The body of `fastbrain generate ARGS...`: 0, 1 on a failure, 2 on bad arguments.
function M.main(args)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then io.stdout:write(usage); return 0 end
    local f = flags[a]
    if not f then return bad_usage("unknown option " .. a) end
    local v = f[2] == "b" or args[i + 1]
    if not v then return bad_usage(a .. " needs a value") end
    if f[2] == "i" or f[2] == "n" then
      v = tonumber(v)
      if not v or (f[2] == "i" and math.type(v) ~= "integer") then
        return bad_usage(a .. " needs " .. (f[2] == "i" and "an integer" or "a number"))
      end
    end
    o[f[1]] = v
    i = i + (f[2] == "b" and 1 or 2)
  end
  if not o.model then return bad_usage("--model is required") end
  if not o.prompt then return bad_usage("--prompt is required") end
  if o.device and not devices[o.device] then return bad_usage("--device must be auto, cpu or cuda") end
  local m, err = M.load(o.model, {template = o.template, device = o.device})
  if not m then
    io.stderr:write("fastbrain generate: ", err, "\n")
    return 1
  end
  local model_dir, prompt, ids = o.model, o.prompt, o.ids
  o.model, o.prompt, o.device, o.ids = nil, nil, nil, nil
  local ok, text, gerr = pcall(m.generate, m, prompt, o)
  m:close()
  if not ok or not text then
    io.stderr:write("fastbrain generate: ", model_dir, ": ", tostring(ok and gerr or text), "\n")
    return 1
  end
  io.stdout:write(ids and table.concat(gerr.ids, " ") or text, "\n")
  return 0
end

return M
