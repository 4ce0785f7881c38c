-- fastbrain.export: take a trained adapter out of fastbrain (`fastbrain export`).
--   merged(adapter_dir, out_dir [, base]) -> {out =, base =, bytes =} | nil, err
--     the base model with the adapter added into its weights, as a Hugging Face model directory
--     (weights in the base checkpoint's dtypes, its config.json and tokenizer files) that
--     `fastbrain generate` and transformers load without the adapter. base: a directory or
--     ORG/NAME[@REVISION]; default the one the adapter was trained on (adapter_config.json).
--     out_dir is built beside itself (out_dir.partial) and renamed into place whole; an existing
--     one is refused.
local fb = require "fastbrain"
local lm = require "fastbrain.lm"

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

function M.merged(adapter_dir, out_dir, base)
  if fb.fs.mode(out_dir) then return nil, out_dir .. ": already exists; remove it or choose another --out" end
  local err
  if not base then
    base, err = M.base_of(adapter_dir)
    if not base then return nil, err end
  end
  local partial = out_dir .. ".partial"  -- what an interrupted export left is replaced
  if fb.fs.mode(partial) then fb.fs.remove_tree(partial) end
  local ok
  ok, err = lm.merge(base, adapter_dir, partial)
  if ok then ok, err = os.rename(partial, out_dir) end
  if not ok then
    fb.fs.remove_tree(partial)
    return nil, err
  end
  local st = fb.fs.stat(out_dir .. "/model.safetensors")
  return {out = out_dir, base = base, bytes = st and st.size or 0}
end

-- ---- fastbrain export ----

local usage = [[
usage: fastbrain export ADAPTER_DIR --to merged --out DIR [--model DIR|ORG/NAME]

  --to merged   the base model with the adapter merged into its weights: a Hugging Face model
                directory (safetensors in the base's dtype, config, tokenizer files) that
                `fastbrain generate --model DIR` and transformers load without the adapter
  --model       the base model (default: the adapter's base_model_name_or_path and revision)
]]

function M.main(args)
  local opts, i = {}, 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then io.stdout:write(usage); return 0 end
    local key = a:match("^%-%-(%a+)$")
    if key == "to" or key == "out" or key == "model" then
      if not args[i + 1] then
        io.stderr:write("fastbrain export: ", a, " needs a value\n", usage)
        return 2
      end
      opts[key], i = args[i + 1], i + 2
    elseif not key and not opts.adapter then
      opts.adapter, i = a, i + 1
    else
      io.stderr:write("fastbrain export: unknown option ", a, "\n", usage)
      return 2
    end
  end
  local missing = not opts.adapter and "ADAPTER_DIR" or not opts.to and "--to" or not opts.out and "--out"
  if missing then
    io.stderr:write("fastbrain export: ", missing, " is required\n", usage)
    return 2
  end
  if opts.to ~= "merged" then
    io.stderr:write("fastbrain export: --to ", opts.to, ": unknown target (this version exports merged)\n")
    return 2
  end
  local r, err = M.merged(opts.adapter, opts.out, opts.model)
  if not r then
    io.stderr:write("fastbrain export: ", err, "\n")
    return 1
  end
  io.stdout:write(("merged %s into %s: %s (%.1f MB of weights)\n"):format(opts.adapter, r.base, r.out,
    r.bytes / 2 ^ 20))
  return 0
end

return M
