-- scripts/checkpoint-adapter.lua: a training job's checkpoint as an adapter directory, off the
-- server's loop (it loads the base model; fastbrain.checkpoints starts it).
-- Usage: fastbrain run scripts/checkpoint-adapter.lua STEP_DIR OUT < SPEC.json
local fb = require "fastbrain"
local trainer = require "fastbrain.train.core"

local function main(step_dir, out)
  if not out then
    io.stderr:write("usage: fastbrain run scripts/checkpoint-adapter.lua STEP_DIR OUT < SPEC.json\n")
    return 2
  end
  local parsed, spec = pcall(trainer.spec, io.read("a"))
  local ok, err = false, spec
  if parsed then ok, err = trainer.checkpoint_adapter(spec, step_dir, out) end
  if ok then return 0 end
  io.stderr:write(err, "\n")
  return 1
end

fb.exit(main(arg[1], arg[2]))
