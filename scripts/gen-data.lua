-- scripts/gen-data.lua: write new training examples for a skill with the provider chain.
-- usage: fastbrain run scripts/gen-data.lua --skill ID --count N [--data-dir DIR]
--        [--keys FILE] [--batch N]
-- The skill lives in DIR/skills/ID/ (skill.json, data.jsonl); a bundled skill from
-- share/skills/ID is copied there first. Kept examples are appended atomically.
local fb = require "fastbrain"
local args = require "fastbrain.args"
local gendata = require "fastbrain.gendata"
local providers = require "fastbrain.providers"

local USAGE = "usage: fastbrain run scripts/gen-data.lua --skill ID --count N [--data-dir DIR] [--keys FILE] [--batch N]"

local function parse(argv)
  local opts, err, help = args.parse(argv, {
    options = {skill = "string", count = "string", data_dir = "string", keys = "string", batch = "string"},
    defaults = {data_dir = os.getenv("FASTBRAIN_HOME") or "./fastbrain-data", batch = 5}, usage = USAGE})
  if not opts then return nil, err, help end
  if not opts.skill or not opts.skill:match("^[%w_-]+$") then return nil, "--skill ID (letters, digits, - and _) is required\n" .. USAGE end
  opts.count = math.tointeger(tonumber(opts.count or ""))
  if not opts.count or opts.count < 1 or opts.count > 1000 then return nil, "--count must be an integer 1..1000\n" .. USAGE end
  opts.batch = math.tointeger(tonumber(opts.batch)) or 5
  return opts
end

-- The skill's folder in the data directory, seeded from the bundled copy when missing.
local function skill_dir(opts)
  local dir = opts.data_dir .. "/skills/" .. opts.skill
  if fb.fs.mode(dir .. "/data.jsonl") then return dir end
  local bundled = fb.root .. "/share/skills/" .. opts.skill
  local data = fb.fs.read(bundled .. "/data.jsonl")
  if not data then return nil, ("no skill '%s' in %s/skills or in the bundled skills"):format(opts.skill, opts.data_dir) end
  assert(fb.fs.mkdir_p(dir))
  assert(fb.fs.write_atomic(dir .. "/data.jsonl", data))
  assert(fb.fs.write_atomic(dir .. "/skill.json", assert(fb.fs.read(bundled .. "/skill.json"))))
  return dir
end

local opts, err, help = parse({...})
if help then print(err) return end
if not opts then
  io.stderr:write(err, "\n")
  fb.exit(2)
  return
end

fb.spawn(function()
  local dir, derr = skill_dir(opts)
  if not dir then io.stderr:write("gen-data: ", derr, "\n"); return fb.exit(1) end
  local skill = fb.json.decode(assert(fb.fs.read(dir .. "/skill.json"))) or {}
  skill.id = opts.skill
  local report, gerr = gendata.generate{
    chain = providers.default_chain{data_dir = opts.data_dir, keys_file = opts.keys},
    skill = skill, data_path = dir .. "/data.jsonl", count = opts.count, batch = opts.batch,
    on_progress = function(r) fb.log.info("gen-data: %d/%d kept", r.kept, opts.count) end,
  }
  if not report then io.stderr:write("gen-data: ", gerr, "\n"); return fb.exit(1) end
  print(fb.json.encode({kept = report.kept, dropped = report.dropped, by_provider = report.by_provider,
                        error = report.error}))
  if report.kept < opts.count then fb.exit(1) end
end)
