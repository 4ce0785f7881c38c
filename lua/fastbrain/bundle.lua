-- fastbrain.bundle: an adapter as one download, NAME.tar.gz holding NAME/ with the PEFT files
-- (adapter_config.json, adapter_model.safetensors), the training record (summary.json) and a
-- README.md that shows how to load it elsewhere. GNU tar makes the archive in a child process
-- (fastbrain.process), so the loop keeps serving meanwhile.
--   readme(name, config, summary, skill) -> the README's text
--   tar_gz(dir, name, readme) -> bytes | nil, err   (from a coroutine)
local fb = require "fastbrain"
local process = require "fastbrain.process"

local M = {MAX_BYTES = 2 ^ 30}

local FILES = {"adapter_config.json", "adapter_model.safetensors", "summary.json"}

local function fence(lang, text) return ("```%s\n%s\n```\n"):format(lang, text) end

function M.readme(name, config, summary, skill)
  local base = config.base_model_name_or_path or "BASE_MODEL"
  local revision = type(config.revision) == "string" and config.revision or nil
  local lines = {
    ("# %s\n"):format(name),
    ("A LoRA adapter (PEFT format) trained by fastbrain%s on `%s`%s: rank %s, alpha %s, %s examples, %s steps.\n")
      :format(skill and skill.name and (" for the skill " .. skill.name) or "", base,
              revision and (" at revision `" .. revision .. "`") or "", tostring(config.r),
              tostring(config.lora_alpha), tostring(summary.examples), tostring(summary.steps)),
  }
  if type(summary.eval_loss) == "number" and type(summary.base_eval_loss) == "number" then
    lines[#lines + 1] = ("Held-out loss %.3f, the base model's %.3f on the same examples.\n")
      :format(summary.eval_loss, summary.base_eval_loss)
  end
  if skill and type(skill.system) == "string" then
    lines[#lines + 1] = "It was trained with this system prompt; send it as the first message:\n"
    lines[#lines + 1] = fence("text", skill.system)
  end
  local py = fb.json.encode  -- a JSON string is a Python string literal
  local messages = {{role = "user", content = "Hello!"}}
  if skill and type(skill.system) == "string" then table.insert(messages, 1, {role = "system", content = skill.system}) end
  lines[#lines + 1] = "## transformers + peft\n"
  lines[#lines + 1] = fence("python", table.concat({
    "from transformers import AutoModelForCausalLM, AutoTokenizer",
    "from peft import PeftModel",
    ("base = AutoModelForCausalLM.from_pretrained(%s%s)"):format(py(base), revision and (", revision=" .. py(revision)) or ""),
    ("tokenizer = AutoTokenizer.from_pretrained(%s)"):format(py(base)),
    ("model = PeftModel.from_pretrained(base, %s)"):format(py(name)),
    "messages = " .. py(messages),
    "ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\")",
    "print(tokenizer.decode(model.generate(ids, max_new_tokens=128)[0][ids.shape[1]:], skip_special_tokens=True))",
  }, "\n"))
  lines[#lines + 1] = "## fastbrain\n"
  lines[#lines + 1] = fence("sh", table.concat({
    ("fastbrain generate --model %s --adapter %s --prompt 'Hello!'"):format(base, name),
    ("fastbrain export %s --to merged --out %s-merged   # one model directory, no adapter needed"):format(name, name),
  }, "\n"))
  lines[#lines + 1] = "## llama.cpp and Ollama\n"
  lines[#lines + 1] = "Both take the adapter as GGUF, which `fastbrain export` writes and checks in llama.cpp:\n"
  lines[#lines + 1] = fence("sh", table.concat({
    ("fastbrain export --model %s --to gguf --out base.gguf"):format(base),
    ("fastbrain export %s --to gguf-lora --out %s.gguf   # llama-cli -m base.gguf --lora %s.gguf"):format(name, name, name),
    ("fastbrain export %s --to ollama --out %s-ollama    # base, adapter and a Modelfile"):format(name, name),
    ("ollama create %s -f %s-ollama/Modelfile"):format(name, name),
  }, "\n"))
  if skill and type(skill.system) == "string" then
    lines[#lines + 1] = "Give `--to ollama` the system prompt above with `--system` to make it the Modelfile's SYSTEM.\n"
  end
  return table.concat(lines, "\n")
end

function M.tar_gz(dir, name, readme)
  local stage = os.tmpname()  -- a private name for the README's directory
  os.remove(stage)
  local ok, err = fb.fs.mkdir_p(stage)
  if ok then ok, err = fb.fs.write_atomic(stage .. "/README.md", readme) end
  if not ok then
    fb.fs.remove_tree(stage)
    return nil, err
  end
  local argv = {"tar", "-czf", "-", "--owner=0", "--group=0", "--numeric-owner", "--mode=u+rw,go+r",
                "--transform", "s,^," .. name .. "/,", "-C", dir}
  for _, f in ipairs(FILES) do
    if fb.fs.mode(dir .. "/" .. f) then argv[#argv + 1] = f end
  end
  for _, a in ipairs({"-C", stage, "README.md"}) do argv[#argv + 1] = a end
  local r
  r, err = process.run{argv = argv, max_output = M.MAX_BYTES, timeout_ms = 300000}
  fb.fs.remove_tree(stage)
  if not r then return nil, err end
  if r.code ~= 0 or r.stdout_dropped > 0 then
    return nil, ("tar: %s"):format(r.stdout_dropped > 0 and "the archive is over 1 GiB" or
                                    (r.stderr ~= "" and r.stderr or "exit " .. tostring(r.code)))
  end
  return r.stdout
end

return M
