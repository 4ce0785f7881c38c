-- train.lua: train one skill from the command line, an example of a custom workflow: find the
-- skill (a directory, the data directory's skills/ or the bundled share/skills/), train an
-- adapter on its data.jsonl with fastbrain.train.run (max_len: the model's context unless
-- given) while printing progress, then answer the skill's sample prompts with the new adapter
-- (and with the base model, for comparison).
-- usage: fastbrain run scripts/train.lua SKILL [--model DIR] [--out DIR] [--data-dir DIR]
--        [--epochs N] [--max-len N] [--lr X] [--rank R] [--max-tokens N]
local fb = require "fastbrain"
local args = require "fastbrain.args"
local duration = require "fastbrain.duration"

local USAGE = "usage: fastbrain run scripts/train.lua SKILL [--model DIR] [--out DIR] [--data-dir DIR]\n" ..
  "       [--epochs N] [--max-len N] [--lr X] [--rank R] [--max-tokens N]\n"
local OPTIONS = {epochs = "number", max_len = "number", lr = "number", rank = "number", max_tokens = "number",
                 model = "string", out = "string", data_dir = "string"}

local function parse(argv)
  local opts, err, help = args.parse(argv, {options = OPTIONS, word = "skill", usage = USAGE,
    defaults = {model = fb.root .. "/share/models/tiny", max_tokens = 96,
                data_dir = os.getenv("FASTBRAIN_HOME") or "./fastbrain-data"}})
  if not opts then return nil, err, help end
  if not opts.skill then return nil, "which skill? (a directory or an id such as plumbing-receptionist)\n" .. USAGE end
  return opts
end

local function read_json(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(fb.json.decode, text)
  return ok and type(v) == "table" and v or nil
end

-- The skill's directory and skill.json -> dir, skill | nil, err
local function find_skill(opts)
  local tried = {}
  for _, dir in ipairs({opts.skill, opts.data_dir .. "/skills/" .. opts.skill, fb.root .. "/share/skills/" .. opts.skill}) do
    local skill = read_json(dir .. "/skill.json")
    if skill then return dir, skill end
    tried[#tried + 1] = dir
  end
  return nil, "no skill.json in " .. table.concat(tried, ", ")
end

local function main()
  local opts, err, help = parse(arg)
  if not opts then return args.report(err, help, "train.lua") end
  local dir, skill = find_skill(opts)
  if not dir then
    io.stderr:write("train.lua: ", skill, "\n")
    return 1
  end
  local id = dir:match("([^/]+)/*$")
  local out = opts.out or (opts.data_dir .. "/adapters/" .. id .. "/" .. os.date("!%Y%m%d-%H%M%S"))
  local prompts = skill.sample_prompts or {}
  -- the trainer's default max_len (512 tokens) cuts most answers away under a byte tokenizer:
  -- default to the model's whole context instead (examples are padded to the longest, not to it)
  local context = (read_json(opts.model .. "/config.json") or {}).max_position_embeddings
  print(string.format("training %s (%s) on %s -> %s", skill.name or id, dir, opts.model, out))
  local summary, terr, where = fb.train.run({
    model = opts.model, data = dir .. "/data.jsonl", out = out, template = skill.template,
    epochs = opts.epochs, max_len = opts.max_len or context, lr = opts.lr, lora = opts.rank and {r = opts.rank} or nil,
  }, {
    on_progress = function(ev)
      if ev.step % 10 == 0 or ev.step == ev.total_steps then
        print(string.format("step %d/%d epoch %.2f loss %.4f %.0f tok/s eta %ds", ev.step, ev.total_steps,
          ev.epoch, ev.loss_smoothed, ev.tokens_per_s, math.floor(ev.eta_s + 0.5)))
      end
    end,
    on_eval = function(ev) print(string.format("step %d eval loss %.4f", ev.step, ev.eval_loss)) end,
  })
  if not summary then
    io.stderr:write("train.lua: ", tostring(where), ": ", tostring(terr), "\n")
    return 1
  end
  print(string.format("done: %d steps in %s, training loss %.4f, held-out loss %s, adapter in %s", summary.steps,
    duration.text(summary.wall_time_s), summary.final_loss_smoothed, tostring(summary.eval_loss), out))

  local m <close>, lerr = fb.model.load(opts.model, {template = skill.template})
  if not m then
    io.stderr:write("train.lua: ", lerr, "\n")
    return 1
  end
  for _, prompt in ipairs(prompts) do
    local gen = {max_tokens = opts.max_tokens, system = skill.system}
    local before = assert(m:generate(prompt, gen))
    gen.adapter = out
    local after = assert(m:generate(prompt, gen))
    print(string.format("\nQ: %s\nbase:    %s\nadapter: %s", prompt, before, after))
  end
  return 0
end

fb.exit(main())
