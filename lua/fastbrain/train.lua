-- fastbrain.train: a training run in this process, blocking. The data is read, rendered with
-- the chat template and tokenized here (fastbrain.dataset); the loop is C (fastbrain.train.core).
--   run(spec, {on_progress =, on_eval =, on_sample =, on_scenarios =, on_event =}) -> summary | nil, err, code
-- A hook (or spec.hooks, a Lua file returning {on_step =, on_eval =, on_done =}) may return
-- "stop" to end the run early with its output, or a number: the new base learning rate.
-- spec.select = "scenarios": spec.scenarios ({id, messages, checks} each; those without hard
-- checks are left out) are answered at every evaluation; their answers are checked here
-- (fastbrain.scenarios.verdicts) and the trainer keeps the weights that pass the most.
--   main(spec_json, {json =, tty =, resume =}) -> exit status (fastbrain train / worker)
-- fields() and check_request(overrides) are the trainer's own description and checks of the
-- spec (engine/train_spec.c), for forms and routes.
local json = require "fastbrain.json"
local tokenizer = require "fastbrain.tokenizer"
local dataset = require "fastbrain.dataset"
local model = require "fastbrain.model"
local templates = require "fastbrain.templates"
local trainer = require "fastbrain.train.core"
local scenarios = require "fastbrain.scenarios"
local fs = require "fastbrain.fs"
local core = require "fastbrain.core"
local duration = require "fastbrain.duration"

-- A small model (hidden size under SMALL_HIDDEN) moves too little at the usual LoRA learning
-- rate (2e-4) and epochs (3): by default it gets SMALL_MODEL_LR and SMALL_MODEL_EPOCHS (measured
-- on share/models/tiny, which never saw the bundled skills: 3 epochs at 1e-3 left 1 of 5 held-out
-- electrician answers in the skill's voice, 6 at 5e-3 4 of 5, the held-out loss still falling;
-- docs/model.md).
local M = {MAX_DEFAULT_LEN = 2048, SMALL_HIDDEN = 512, SMALL_MODEL_LR = 5e-3, SMALL_MODEL_EPOCHS = 6}

-- What a run on the model of this config.json uses where its spec is silent: an example may
-- fill the model's context, up to MAX_DEFAULT_LEN tokens; a small model's LoRA gets its lr and
-- epochs.
local function model_defaults(config, mode)
  local context = config.max_position_embeddings or M.MAX_DEFAULT_LEN
  local small = (mode or "lora") == "lora" and (config.hidden_size or math.huge) < M.SMALL_HIDDEN
  return {context = context, max_len = math.min(context, M.MAX_DEFAULT_LEN), lr = small and M.SMALL_MODEL_LR or nil,
          epochs = small and M.SMALL_MODEL_EPOCHS or nil}
end

-- base with over's fields added or replaced, objects merged field by field (arrays replaced).
function M.merge(base, over)
  for k, v in pairs(over) do
    if type(v) == "table" and type(base[k]) == "table" and not json.is_array(v) then
      M.merge(base[k], v)
    else
      base[k] = v
    end
  end
  return base
end

-- The spec a run on model (a directory or ORG/NAME) gets where it names nothing: the
-- trainer's defaults with the model's own (max_len, lr, epochs) -> table
function M.defaults(name)
  local model_dir = model.locate(name) or name
  local spec = json.decode(trainer.defaults())
  -- Without the fields a run must be given: data, and the empty strings (model, out...).
  spec.data = nil
  for k, v in pairs(spec) do
    if v == "" then spec[k] = nil end
  end
  local d = model_defaults(model.read_json(model_dir .. "/config.json") or {})
  spec.max_len, spec.lr, spec.epochs = d.max_len, d.lr or spec.lr, d.epochs or spec.epochs
  return spec
end

-- Every field of the spec as the trainer describes it (engine/train_spec.c), in its order:
-- {{name =, type =, min =, max =, choices =, default =, set_by = "request"|"server", doc =}...}
function M.fields() return json.decode(trainer.fields()) end

-- A request's overrides (what a form or an API client may set) -> nil | {field = problem}:
-- the trainer's checks (ranges, types, unknown fields, fields the server sets), all at once,
-- and a template name fastbrain.templates knows.
function M.check_request(overrides)
  local problems = trainer.check_request(json.encode(overrides))
  local name = type(overrides) == "table" and overrides.template
  local problem = name ~= nil and not (problems or {}).template and templates.name_problem(name)
  if problem then
    problems = problems or {}
    problems.template = problem
  end
  return problems
end

-- select = "scenarios": spec.scenarios with hard checks -> {{text = id, ids =, checks =}...}
-- | nil, err (naming the field)
local function scenario_prompts(spec, render)
  -- As JSON gives them (lists marked as such, which fastbrain.scenarios checks), from a script too.
  local list = type(spec.scenarios) == "table" and json.decode(json.encode(spec.scenarios))
  if type(list) ~= "table" or (next(list) ~= nil and not json.is_array(list)) then
    return nil, "spec.scenarios: a list of scenarios ({id, messages, checks}) expected"
  end
  local out, system = {}, (spec.samples or {}).system
  for i, sc in ipairs(list) do
    local ok, problem = scenarios.check_one(sc)
    if not ok then return nil, ("spec.scenarios[%d]: %s"):format(i, problem) end
    if sc.checks and next(sc.checks) then
      out[#out + 1] = {text = sc.id, ids = render(scenarios.with_system(sc.messages, system)), checks = sc.checks}
    end
  end
  if #out == 0 then
    return nil, 'spec.scenarios: select "scenarios" needs at least one scenario with hard checks (there are none)'
  end
  return out
end

-- Tokenized train/eval examples, sample prompts and (select = "scenarios") scenarios for spec
-- -> data | nil, err, where
function M.prepare(spec)
  local dir, lerr = model.locate(spec.model)
  if not dir then return nil, lerr, "spec.model" end
  local tok, err = tokenizer.load(dir)
  if not tok then return nil, err, spec.model end
  local template, eos = model.template(dir, spec.template)
  if not template then return nil, eos, "spec.template" end
  local data = {train = {}, eval = {}, prompts = {}, tokenizer = tok}
  local defaults = model_defaults(model.read_json(dir .. "/config.json") or {}, spec.mode)
  local max_len = math.min(spec.max_len or defaults.max_len, defaults.context)
  local hashes = {}
  local files = type(spec.data) == "table" and spec.data or {spec.data}
  for _, path in ipairs(files) do
    local ds, derr = dataset.load(path, {tokenizer = tok, template = template, eos = eos,
                                         max_len = max_len})
    if not ds then return nil, derr, path end
    hashes[#hashes + 1] = ds:stats().hash
    local tr, ev = ds:split{eval = spec.eval and spec.eval.fraction or 0.1, seed = (spec.seed or 42) % 0x7fffffff}
    for _, ex in tr:examples() do data.train[#data.train + 1] = ex end
    for _, ex in ev:examples() do data.eval[#data.eval + 1] = ex end
  end
  data.hash = table.concat(hashes, ",")
  data.max_len = max_len
  data.lr = not spec.lr and defaults.lr or nil
  data.epochs = not spec.epochs and defaults.epochs or nil
  local function render(messages)
    local text = assert(templates.render(template, messages, {add_generation_prompt = true, eos = eos}))
    return tok:encode(text, {special = true})
  end
  -- Sample prompts are asked as the skill's users ask: after its system prompt, when it has one.
  local samples = spec.samples or {}
  for _, prompt in ipairs(samples.prompts or {}) do
    local messages = scenarios.with_system({{role = "user", content = prompt}}, samples.system)
    data.prompts[#data.prompts + 1] = {text = prompt, ids = render(messages)}
  end
  if spec.select == "scenarios" then
    local list, serr = scenario_prompts(spec, render)
    if not list then return nil, serr, "spec.scenarios" end
    data.scenarios = list
  end
  return data
end

local hook_names = {progress = "on_progress", eval = "on_eval", sample = "on_sample", scenarios = "on_scenarios"}
local file_hook_names = {progress = "on_step", eval = "on_eval"}

-- A `scenarios` event checked: each answer gets pass and checks (its verdicts), the event
-- passed (how many did).
local function check_answers(ev, list)
  local checks = {}
  for _, sc in ipairs(list) do checks[sc.text] = sc.checks end
  ev.passed = 0
  for _, a in ipairs(ev.answers) do
    local verdicts, pass = scenarios.verdicts(a.text, checks[a.id])
    a.pass, a.checks = pass, json.array(verdicts)
    if pass then ev.passed = ev.passed + 1 end
  end
end

-- The hooks a spec's Lua file returns -> table | nil, err
local function file_hooks(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, t = pcall(chunk)
  if ok and type(t) == "table" then return t end
  return nil, path .. ": " .. (ok and "must return a table of hooks (on_step, on_eval, on_done)" or tostring(t))
end

-- Run spec; hooks get each event as a table (on_event gets every one, with its JSON line).
-- A hook returning "stop" ends the run early, with its output. opts: resume, catch_term.
function M.run(spec, hooks, opts)
  if type(spec) ~= "table" then error("fastbrain.train.run: spec table expected", 2) end
  hooks = hooks or {}
  local file = {}
  if spec.hooks and spec.hooks ~= "" then
    local ferr
    file, ferr = file_hooks(spec.hooks)
    if not file then return nil, ferr, spec.hooks end
  end
  local data, err, where = M.prepare(spec)
  if not data then return nil, err, where end
  local run_spec = {}  -- the spec as run: max_len within the model's context, a small model's lr, epochs
  for k, v in pairs(spec) do run_spec[k] = v end
  run_spec.max_len = data.max_len
  -- A model folder by its full path: the adapter names its base wherever it is used from.
  if fs.stat(spec.model) then run_spec.model = fs.realpath(spec.model) or spec.model end
  run_spec.lr = spec.lr or data.lr
  run_spec.epochs = spec.epochs or data.epochs
  local parsed = trainer.spec(json.encode(run_spec))  -- the one parse and check; raises naming the field
  local fits, why = require("fastbrain.estimate").check(run_spec, data, parsed)
  if not fits then return nil, why, "memory" end
  local summary
  local ok, msg, code = trainer.run(parsed, data, function(line)
    local ev = json.decode(line)
    if ev.event == "scenarios" then
      check_answers(ev, data.scenarios)
      line = json.encode(ev)
    end
    local answer
    local function call(fn, ...)
      if fn then
        local a = fn(...)
        if a ~= nil then answer = a end
      end
    end
    if ev.event == "done" then
      summary = ev.summary
      call(file.on_done, summary)
    end
    call(hooks.on_event, ev, line)
    call(hooks[hook_names[ev.event]], ev)
    call(file[file_hook_names[ev.event]], ev)
    if ev.event == "scenarios" then
      return {score = ev.passed, stop = answer == "stop" or nil, lr = math.type(answer) and answer or nil}
    end
    return answer
  end, opts)
  if not ok then return nil, msg, code end
  return summary
end

-- The training loss a person sees is the smoothed one (loss_smoothed), on the bar, the plain
-- lines and the done line alike: one number that does not jump with each batch.
local function bar(ev)
  local width, done = 30, ev.step / ev.total_steps
  local fill = math.floor(done * width + 0.5)
  return string.format("\r[%s%s] %d/%d training loss %.4f  %.0f tok/s  %s left ", string.rep("#", fill),
    string.rep(".", width - fill), ev.step, ev.total_steps, ev.loss_smoothed, ev.tokens_per_s, duration.text(ev.eta_s))
end

-- How `fastbrain train` shows a run: JSON lines, a bar on a terminal, or plain lines. A worker
-- records each JSON line in opts.record before printing it (docs/protocol.md).
local function printer(opts)
  local record = opts.record and assert(io.open(opts.record, "a"))
  if record then record:setvbuf("full", 1 << 20) end  -- one write a line
  return function(ev, line)
    if record then
      record:write(line, "\n")
      record:flush()
    end
    if opts.json then
      -- A reader that is gone (a worker's registry killed) ends the run as SIGPIPE would, were it
      -- not ignored process-wide once fastbrain.process loads: an orphan must not train on.
      if not (io.stdout:write(line, "\n") and io.stdout:flush()) then os.exit(128 + 13, false) end
      return
    end
    local e = ev.event
    if e == "progress" and opts.tty then
      io.stdout:write(bar(ev))
      if ev.step == ev.total_steps then io.stdout:write("\n") end
    elseif e == "progress" then
      io.stdout:write(string.format("step %d/%d epoch %.2f training loss %.4f lr %.3g %.0f tok/s %s left\n",
        ev.step, ev.total_steps, ev.epoch, ev.loss_smoothed, ev.lr, ev.tokens_per_s, duration.text(ev.eta_s)))
    elseif e == "eval" then
      io.stdout:write(string.format("%sstep %d held-out loss %.4f\n", opts.tty and "\n" or "", ev.step, ev.eval_loss))
    elseif e == "sample" then
      io.stdout:write(string.format("%sstep %d sample: %s -> %s\n", opts.tty and "\n" or "", ev.step, ev.prompt, ev.text))
    elseif e == "scenarios" then
      io.stdout:write(string.format("%sstep %d scenarios: %d of %d pass\n", opts.tty and "\n" or "", ev.step,
        ev.passed, ev.total))
    elseif e == "saving" then
      io.stdout:write("saving the adapter...\n")
    elseif e == "log" then
      io.stderr:write(ev.level, ": ", ev.message, "\n")
    elseif e == "error" then
      io.stderr:write("fastbrain train: ", ev.where, ": ", ev.message, "\n")
    elseif e == "done" then
      local s = ev.summary
      local held_out = type(s.eval_loss) == "number" and type(s.base_eval_loss) == "number" and
        string.format(", held-out loss %.4f (base model %.4f)", s.eval_loss, s.base_eval_loss) or ""
      local selected = s.select == "scenarios" and string.format(", step %d's weights (%d of %d scenarios pass)",
        s.selected_step, s.selected_passed, s.scenario_total) or ""
      io.stdout:write(string.format("done: %d steps in %s, training loss %.4f%s%s, adapter in %s\n", s.steps,
        duration.text(s.wall_time_s), s.final_loss_smoothed, held_out, selected, ev.adapter))
    elseif e == "start" then
      io.stdout:write(string.format("training %d examples (%d held out) for %d steps on %s%s\n", ev.examples,
        ev.eval_examples, ev.total_steps, ev.device, ev.resumed_from_step > 0 and
        (", resumed from step " .. ev.resumed_from_step) or ""))
    end
    io.stdout:flush()
  end
end

-- `--scenarios FILE`: the file's scenarios as spec.scenarios -> true | nil, err (naming the line)
local function read_scenarios(spec, path)
  local text, err = fs.read(path)
  if not text then return nil, err end  -- it names the file
  local list, problems = scenarios.parse(text)
  if not list then return nil, ("%s: line %s: %s"):format(path, tostring(problems[1].line), problems[1].message) end
  spec.scenarios = json.array(list)
  return true
end

-- The body of `fastbrain train` and `fastbrain worker`: 0 done, 1 error, 2 a file an option names
-- is unusable (a spec that is not a JSON object), 3 cancelled, 4 out of memory (or it would not
-- fit: fastbrain.estimate). opts.estimate: only say what the run costs; opts.scenarios: a
-- scenarios.jsonl to select by; opts.checkpoints: where checkpoints go unless the spec says.
function M.main(spec_json, opts)
  if opts.estimate then return require("fastbrain.estimate").main(spec_json, opts) end
  local show = printer(opts)
  local decoded, spec = pcall(json.decode, spec_json)
  if not decoded or type(spec) ~= "table" or json.is_array(spec) then
    local ev = {event = "error", message = decoded and "must be a JSON object" or tostring(spec), where = "spec"}
    show(ev, json.encode(ev))
    return 2
  end
  if spec.checkpoints == nil then spec.checkpoints = opts.checkpoints end
  if opts.scenarios then
    local ok, err = read_scenarios(spec, opts.scenarios)
    if not ok then
      io.stderr:write("fastbrain train: --scenarios ", err, "\n")
      return 2
    end
  end
  local ok, summary, err, code = core.try(M.run, spec, {on_event = show}, {resume = opts.resume, catch_term = true})
  if not ok then summary, err, code = nil, tostring(summary), err == "memory" and "nomem" or "spec" end
  if summary then return 0 end
  if code == "cancelled" then return 3 end
  if code ~= "error" and code ~= "nomem" then  -- a failure around the run: not reported yet
    local ev = {event = "error", message = err, where = code}
    show(ev, json.encode(ev))
  end
  return (code == "nomem" or code == "memory") and 4 or 1
end

return M
