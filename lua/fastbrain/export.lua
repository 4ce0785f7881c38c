-- fastbrain.export: take a trained adapter out of fastbrain (`fastbrain export`).
--   merged(adapter_dir, out_dir [, base]) -> {out =, base =, bytes =} | nil, err
--     the base model with the adapter added into its weights, as a Hugging Face model directory
--     (weights in the base checkpoint's dtypes, its config.json and tokenizer files) that
--     `fastbrain generate` and transformers load without the adapter. base: a directory or
--     ORG/NAME[@REVISION]; default the one the adapter was trained on (adapter_config.json).
--     out_dir is built beside itself (out_dir.partial) and renamed into place whole; an existing
--     one is refused.
--   gguf(adapter_dir|nil, out_file, {base =, type =}) -> {out =, base =, bytes =} | nil, err
--     the merged model (or, without an adapter, the base) as one GGUF file for llama.cpp, with
--     the tokenizer, chat template and rope settings; type "f32" (default), "f16" or "q8_0".
--   gguf_lora(adapter_dir, out_file [, base]) -> {out =, base =, bytes =} | nil, err
--     the adapter as a GGUF LoRA that llama.cpp applies to the base's GGUF.
--   check{model =, lora =, base =, adapter =, prompts =, max_tokens =} -> report | nil, err, how
--     greedy decoding of the GGUF (+ LoRA) in the real llama.cpp (scripts/llama-check.mjs on
--     npm's node-llama-cpp) beside fastbrain's own (base + adapter) for the same prompts; in a
--     coroutine (a command's main is one). report = {llama_cpp, node_llama_cpp, prompts =
--     {{prompt, want, got, same, stopped, want_stopped, why}}}: ids before the end token,
--     stopped when llama.cpp reached it, want_stopped when fastbrain did, why where they part
--     ("" when the same). err when llama.cpp did not run; how = {absent = true} when node or
--     node-llama-cpp is not installed.
--   ollama(adapter_dir, out_dir, {base =, type =, template =, system =}) -> {out =, base =,
--     bytes =, model =, lora =, template =, system =} | nil, err
--     a directory for `ollama create NAME -f Modelfile`: the base as base.gguf (gguf, type as
--     there), the adapter as adapter.gguf (gguf_lora), a Modelfile (fastbrain.ollama) with the
--     chat template (template: a fastbrain.templates name; default the one the adapter was
--     trained with, summary.json's spec.template, else the base's) and the system prompt, and a
--     README.md; built as out_dir.partial and renamed into place whole.
--   skill_of(adapter_dir) -> the skill (its skill.json: system, template...) when the adapter
--     sits in a data directory, DATA/adapters/SKILL/VERSION with DATA/skills/SKILL/skill.json;
--     else nil
--   GGUF files are written atomically; an existing out_file is refused.
local fb = require "fastbrain"
local lm = require "fastbrain.model.core"
local ollama_files = require "fastbrain.ollama"

local M = {}

-- The base an adapter names: base_model_name_or_path, at its recorded revision when it has one.
function M.base_of(adapter_dir)
  local path = adapter_dir .. "/adapter_config.json"
  local text, err = fb.fs.read(path)
  if not text then return nil, err end
  local ok, cfg = pcall(fb.json.decode, text)
  if not ok or type(cfg) ~= "table" then return nil, path .. ": not valid JSON" end
  local name = cfg.base_model_name_or_path
  if type(name) ~= "string" or name == "" then
    return nil, path .. ": base_model_name_or_path is missing (pass --model)"
  end
  if type(cfg.revision) == "string" and cfg.revision ~= "" and lm.parse_ref(name) then
    name = name .. "@" .. cfg.revision
  end
  return name
end

-- The base an export without --model uses, and the refusal of an existing output.
local function prepare(adapter_dir, out, base)
  if fb.fs.mode(out) then return nil, out .. ": already exists; remove it or choose another --out" end
  if base then return base end
  if not adapter_dir then return nil, "a base model is needed: pass --model (or an adapter)" end
  return M.base_of(adapter_dir)
end

local function done(out, base)
  local st = fb.fs.stat(out)
  return {out = out, base = base, bytes = st and st.size or 0}
end

-- out_dir built as out_dir.partial by build(partial) -> result | nil, err, then renamed into
-- place whole; what an interrupted export left is replaced, what a failed one wrote removed.
local function build_dir(out_dir, build)
  local partial = out_dir .. ".partial"
  if fb.fs.mode(partial) then fb.fs.remove_tree(partial) end
  local result, err = build(partial)
  local ok = result ~= nil
  if ok then ok, err = os.rename(partial, out_dir) end
  if not ok then
    fb.fs.remove_tree(partial)
    return nil, err
  end
  return result
end

function M.merged(adapter_dir, out_dir, base)
  local err
  base, err = prepare(adapter_dir, out_dir, base)
  if not base then return nil, err end
  local ok
  ok, err = build_dir(out_dir, function(partial) return lm.merge(base, adapter_dir, partial) end)
  if not ok then return nil, err end
  local r = done(out_dir .. "/model.safetensors", base)
  r.out = out_dir
  return r
end

function M.gguf(adapter_dir, out, opts)
  opts = opts or {}
  local base, err = prepare(adapter_dir, out, opts.base)
  if not base then return nil, err end
  local ok
  ok, err = lm.gguf(base, adapter_dir, out, opts.type or "f32")
  if not ok then return nil, err end
  return done(out, base)
end

function M.gguf_lora(adapter_dir, out, base)
  local err
  base, err = prepare(adapter_dir, out, base)
  if not base then return nil, err end
  local ok
  ok, err = lm.gguf_lora(base, adapter_dir, out)
  if not ok then return nil, err end
  return done(out, base)
end

function M.skill_of(adapter_dir)
  local path = adapter_dir:gsub("/+$", "")
  if path:sub(1, 1) ~= "/" then path = "./" .. path end  -- adapters/SKILL/V in the data directory
  local data_dir, id = path:match("^(.*)/adapters/([^/]+)/[^/]+$")
  if not data_dir then return nil end
  local skills = require "fastbrain.skills"
  if not skills.valid_id(id) then return nil end
  local ok, skill = pcall(skills.read, data_dir ~= "" and data_dir or "/", id)
  return ok and skill or nil
end

local OLLAMA_BASE, OLLAMA_LORA = "base.gguf", "adapter.gguf"

-- The chat template an adapter was trained with, when its summary.json names one.
local function trained_template(adapter_dir)
  local ok, s = pcall(fb.json.decode, fb.fs.read(adapter_dir .. "/summary.json") or "")
  local t = ok and type(s) == "table" and type(s.spec) == "table" and s.spec.template
  return type(t) == "string" and t ~= "" and t or nil
end

-- Ollama's model directory, built in partial: the two GGUFs, then the Modelfile and README.
local function write_ollama(partial, adapter_dir, base, opts)
  local model = require "fastbrain.model"
  local dir, err = model.locate(base)
  if not dir then return nil, err end
  local template, eos = model.template(dir, opts.template or trained_template(adapter_dir))
  if not template then return nil, eos end
  local text
  text, err = ollama_files.modelfile{base = OLLAMA_BASE, adapter = OLLAMA_LORA, template = template,
                                     eos = eos, system = opts.system}
  if not text then return nil, err end
  local ok
  ok, err = fb.fs.mkdir_p(partial)
  if ok then ok, err = lm.gguf(base, nil, partial .. "/" .. OLLAMA_BASE, opts.type or "f32") end
  if ok then ok, err = lm.gguf_lora(base, adapter_dir, partial .. "/" .. OLLAMA_LORA) end
  if ok then ok, err = fb.fs.write_atomic(partial .. "/Modelfile", text) end
  if ok then
    ok, err = fb.fs.write_atomic(partial .. "/README.md", ollama_files.readme{name = opts.name, base = OLLAMA_BASE,
      adapter = OLLAMA_LORA, template = template, system = opts.system})
  end
  if not ok then return nil, err end
  return template
end

function M.ollama(adapter_dir, out_dir, opts)
  opts = opts or {}
  local base, err = prepare(adapter_dir, out_dir, opts.base)
  if not base then return nil, err end
  local name = out_dir:match("([^/]+)/*$"):lower():gsub("[^%w._-]+", "-")  -- Ollama's model name
  local template
  template, err = build_dir(out_dir, function(partial)
    return write_ollama(partial, adapter_dir, base, {type = opts.type, template = opts.template,
                                                     system = opts.system, name = name})
  end)
  if not template then return nil, err end
  local r = done(out_dir .. "/" .. OLLAMA_BASE, base)
  r.bytes = r.bytes + done(out_dir .. "/" .. OLLAMA_LORA).bytes
  r.out, r.model, r.lora = out_dir, out_dir .. "/" .. OLLAMA_BASE, out_dir .. "/" .. OLLAMA_LORA
  r.template, r.system = template, opts.system
  return r
end

-- The prompts `fastbrain export` checks with, and how far: f32 exports token for token, rounded
-- ones (f16, q8_0) until the end token.
M.PROMPTS = {"Hello!", "What can you help me with?", "Tell me about your work in one sentence."}
M.CHECK_TOKENS = 32
M.ROUNDED_TOKENS = 256

local function ids_str(ids, from, to)
  local t = {}
  for i = from, math.min(to, #ids) do t[#t + 1] = tostring(ids[i]) end
  return table.concat(t, " ")
end

-- Where two id lists first differ ("" when they are the same).
local function first_difference(want, got)
  for i = 1, math.max(#want, #got) do
    if want[i] ~= got[i] then
      return ("token %d: fastbrain [%s] llama.cpp [%s]"):format(i, ids_str(want, i, i + 3), ids_str(got, i, i + 3))
    end
  end
  return ""
end

function M.check(c)
  local model = require "fastbrain.model"
  local process = require "fastbrain.process"
  local prompts, max_tokens = c.prompts or M.PROMPTS, c.max_tokens or M.CHECK_TOKENS
  local m, err = model.load(c.base, {device = "cpu"})
  if not m then return nil, err end
  local want = {}
  for i, p in ipairs(prompts) do
    local text, ids = m:render(p)
    local _, info = m:generate(p, {adapter = c.adapter, max_tokens = max_tokens})
    if not text or not info then
      m:close()
      return nil, ids or "fastbrain generate failed"
    end
    want[i] = {prompt_ids = ids, ids = info.ids, stopped = info.stopped}
  end
  m:close()
  local r
  r, err = process.run{argv = {"node", fb.root .. "/scripts/llama-check.mjs"}, timeout_ms = 600000,
    stdin = fb.json.encode{model = c.model, lora = c.lora or fb.json.null, prompts = prompts,
                           max_tokens = max_tokens}}
  if not r then return nil, "node: " .. tostring(err), {absent = true} end
  local last = (r.stderr or ""):match("([^\n]*)\n*$")
  if r.code == 3 then return nil, last, {absent = true} end
  local ok, out = pcall(fb.json.decode, r.stdout or "")
  if r.code ~= 0 or not ok or type(out) ~= "table" then
    return nil, "llama.cpp failed on " .. c.model .. ": " .. (last ~= "" and last or "no message")
  end
  local report = {llama_cpp = out.llama_cpp, node_llama_cpp = out.node_llama_cpp, prompts = {}}
  for i, w in ipairs(want) do
    local g = out.results[i]
    local why = first_difference(w.prompt_ids, g.prompt_ids)
    why = why ~= "" and "the prompt's " .. why or first_difference(w.ids, g.ids)
    if why == "" and w.stopped ~= g.stopped then why = "only one stopped at the end token" end
    report.prompts[i] = {prompt = prompts[i], want = w.ids, got = g.ids, same = why == "",
                         stopped = g.stopped, want_stopped = w.stopped, why = why}
  end
  return report
end

-- ---- fastbrain export ----

local usage = [[
usage: fastbrain export ADAPTER_DIR --to merged|gguf|gguf-lora|ollama --out PATH [options]
       fastbrain export --model DIR|ORG/NAME --to gguf --out FILE.gguf [--type T]

  --to merged     the base model with the adapter merged into its weights: a Hugging Face model
                  directory (safetensors in the base's dtype, config, tokenizer files) that
                  `fastbrain generate --model DIR` and transformers load without the adapter
  --to gguf       the merged model (or, with --model and no adapter, the base) as one GGUF file
                  for llama.cpp and the tools built on it: weights, tokenizer, chat template
  --to gguf-lora  the adapter as a GGUF LoRA for the base's GGUF (llama.cpp --lora FILE)
  --to ollama     a directory for `ollama create NAME -f DIR/Modelfile`: the base as GGUF, the
                  adapter as a GGUF LoRA, a Modelfile with the chat template, end tokens and
                  system prompt, and a README
  --type T        the GGUF's weights (gguf, and ollama's base): f32 (the default; exact), f16
                  or q8_0
  --system TEXT   ollama: the Modelfile's SYSTEM (default: the skill's system prompt when
                  ADAPTER_DIR is DATA/adapters/SKILL/VERSION; '' for none)
  --template NAME ollama: the chat template (default: the one the adapter was trained with)
  --model         the base model (default: the adapter's base_model_name_or_path and revision)
  --no-check      skip the check: a GGUF is loaded in llama.cpp (node-llama-cpp, installed by
                  `make deps`) and greedy-decodes three prompts beside fastbrain; f32 exports
                  must give fastbrain's tokens exactly
]]

local types = {f32 = true, f16 = true, q8_0 = true}
local targets = {merged = true, gguf = true, ["gguf-lora"] = true, ollama = true}

local function bad_usage(msg)
  io.stderr:write("fastbrain export: ", msg, "\n", usage)
  return 2
end

-- Check a GGUF export in llama.cpp and say how it went -> exit status. files: {model =, lora =}
-- (a GGUF, a LoRA and its base's GGUF, or a LoRA alone: checked on the base's GGUF written aside).
local function report_check(opts, r, files)
  local base_file
  if not files.model then
    base_file = os.tmpname()
    os.remove(base_file)
    base_file = base_file .. ".gguf"
    local ok, err = lm.gguf(r.base, nil, base_file, "f32")
    if not ok then
      io.stderr:write("fastbrain export: the check's base GGUF: ", err, "\n")
      return 1
    end
  end
  local rounded = opts.type ~= "f32"
  local rep, err, how = M.check{model = files.model or base_file, lora = files.lora, base = r.base, adapter = opts.adapter,
                                max_tokens = rounded and M.ROUNDED_TOKENS or M.CHECK_TOKENS}
  if base_file then os.remove(base_file) end
  if not rep then
    if how and how.absent then
      io.stdout:write("not checked: ", err, " (`make deps` installs node-llama-cpp)\n")
      return 0
    end
    io.stderr:write("fastbrain export: ", err, "\n")
    return 1
  end
  local same, stopped, want_stopped = 0, 0, 0
  for _, p in ipairs(rep.prompts) do
    if p.same then same = same + 1 end
    if p.stopped then stopped = stopped + 1 end
    if p.want_stopped then want_stopped = want_stopped + 1 end
  end
  local n, what = #rep.prompts, ("llama.cpp %s (node-llama-cpp %s)"):format(rep.llama_cpp, rep.node_llama_cpp)
  if rounded then  -- rounded weights: the tokens may part from fastbrain's
    io.stdout:write(("loaded by %s: %d of %d answers end at the end token (fastbrain's: %d), %d are "
      .. "fastbrain's token for token\n"):format(what, stopped, n, want_stopped, same))
    return 0
  end
  if same == n then
    io.stdout:write(("verified with %s: %d prompts x %d tokens as fastbrain's greedy decoding\n")
      :format(what, n, M.CHECK_TOKENS))
    return 0
  end
  for i, p in ipairs(rep.prompts) do
    if not p.same then io.stderr:write(("fastbrain export: prompt %d (%q): %s\n"):format(i, p.prompt, p.why)) end
  end
  io.stderr:write(("fastbrain export: %s decodes %s unlike fastbrain (%d of %d prompts differ)\n")
    :format(what, r.out, n - same, n))
  return 1
end

function M.main(args)
  local opts, i = {}, 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then io.stdout:write(usage); return 0 end
    local key = a:match("^%-%-([%a-]+)$")
    if key == "no-check" then
      opts.no_check, i = true, i + 1
    elseif key == "to" or key == "out" or key == "model" or key == "type" or key == "system" or key == "template" then
      if not args[i + 1] then return bad_usage(a .. " needs a value") end
      opts[key], i = args[i + 1], i + 2
    elseif not key and not opts.adapter then
      opts.adapter, i = a, i + 1
    else
      return bad_usage("unknown option " .. a)
    end
  end
  local needs_adapter = opts.to ~= "gguf" or not opts.model
  local missing = not opts.to and "--to" or needs_adapter and not opts.adapter and "ADAPTER_DIR"
                  or not opts.out and "--out"
  if missing then return bad_usage(missing .. " is required") end
  if not targets[opts.to] then
    io.stderr:write("fastbrain export: --to ", opts.to, ": unknown target (merged, gguf, gguf-lora or ollama)\n")
    return 2
  end
  if opts.type and opts.to ~= "gguf" and opts.to ~= "ollama" then
    return bad_usage("--type is for --to gguf and ollama only")
  end
  for _, k in ipairs({"system", "template"}) do
    if opts[k] and opts.to ~= "ollama" then return bad_usage("--" .. k .. " is for --to ollama only") end
  end
  opts.type = opts.type or "f32"
  if not types[opts.type] then return bad_usage("--type " .. opts.type .. ": not one of f32, f16, q8_0") end
  local r, err
  if opts.to == "merged" then
    r, err = M.merged(opts.adapter, opts.out, opts.model)
  elseif opts.to == "gguf" then
    r, err = M.gguf(opts.adapter, opts.out, {base = opts.model, type = opts.type})
  elseif opts.to == "ollama" then
    local system = opts.system or (M.skill_of(opts.adapter) or {}).system
    r, err = M.ollama(opts.adapter, opts.out, {base = opts.model, type = opts.type, template = opts.template,
                                               system = system})
  else
    r, err = M.gguf_lora(opts.adapter, opts.out, opts.model)
  end
  if not r then
    io.stderr:write("fastbrain export: ", err, "\n")
    return 1
  end
  local size = ("%.1f MB"):format(r.bytes / 2 ^ 20)
  if opts.to == "merged" then
    io.stdout:write(("merged %s into %s: %s (%s of weights)\n"):format(opts.adapter, r.base, r.out, size))
    return 0
  elseif opts.to == "gguf" then
    io.stdout:write(("wrote %s: %s%s as GGUF %s (%s)\n"):format(r.out, r.base,
      opts.adapter and " + " .. opts.adapter or "", opts.type, size))
  elseif opts.to == "ollama" then
    io.stdout:write(("wrote %s: %s as GGUF %s, %s as a GGUF LoRA, a Modelfile with the %s template%s (%s)\n")
      :format(r.out, r.base, opts.type, opts.adapter, r.template,
              (r.system or "") ~= "" and " and a system prompt" or "", size))
    io.stdout:write(("then: ollama create NAME -f %s/Modelfile\n"):format(r.out))
  else
    io.stdout:write(("wrote %s: %s as a GGUF LoRA for %s (%s)\n"):format(r.out, opts.adapter, r.base, size))
  end
  io.stdout:flush()  -- before the check's lines, which may go to stderr
  if opts.no_check then return 0 end
  local files = {gguf = {model = r.out}, ["gguf-lora"] = {lora = r.out}, ollama = {model = r.model, lora = r.lora}}
  return report_check(opts, r, files[opts.to])
end

return M
