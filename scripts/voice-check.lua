-- voice-check.lua: is a skill's voice recognisable in the bundled model's answers? For each
-- bundled skill (or the ones named) it trains a LoRA adapter with the default settings (or the
-- --lr/--epochs given; none with --base), answers the skill's held-out sample prompts with its system prompt, and measures:
--   words: the share of the answer's words that occur anywhere in the shipped texts
--          (share/corpus and the skills' data) - real English rather than invented words;
--   voice: which skill's answers (data.jsonl) share the most word trigrams with the answer,
--          counting only a skill's own phrases (trigrams no other skill's answers use; "confirm
--          the price" says nothing about which trade), as a fraction of the answer's trigrams -
--          it must be the skill's own.
--   held-out loss: the adapter's on the skill's held-out examples against the base model's on
--          the same examples (before the first step), in nats a token - what LoRA taught.
-- It passes when every skill's mean word share is >= --min-words, at least --min-own of each
-- skill's answers are closest to their own skill and (with LoRA) the held-out loss fell by at
-- least --min-drop nats a token (0.3: the perplexity down by a quarter). Exit 0 pass, 1 fail, 2 usage.
--   fastbrain run scripts/voice-check.lua [SKILL...] [--model DIR] [--base | --lr X --epochs N]
--     [--max-tokens N] [--min-words F] [--min-own F] [--min-drop F] [--out DIR]
local fb = require "fastbrain"
local args = require "fastbrain.args"

local USAGE = "usage: fastbrain run scripts/voice-check.lua [SKILL...] [--model DIR] [--base | --lr X " ..
  "--epochs N] [--max-tokens N] [--min-words F] [--min-own F] [--min-drop F] [--out DIR]\n"
-- How the answers are drawn: greedy, with a mild repetition penalty (a tiny model loops).
local GENERATE = {max_tokens = 96, repetition_penalty = require("fastbrain.answer").REPETITION_PENALTY}

local OPTIONS = {model = "string", out = "string", base = "flag", max_tokens = "number", min_words = "number",
                 min_own = "number", min_drop = "number", lr = "number", epochs = "number"}

local function parse(argv)
  return args.parse(argv, {options = OPTIONS, words = "skills", usage = USAGE,
                           defaults = {model = fb.root .. "/share/models/tiny", min_words = 0.9, min_own = 0.8,
                                       min_drop = 0.3}})
end

local function read(path) return assert(fb.fs.read(path)) end

-- The paths of dir's entries whose names end in suffix, sorted.
local function files(dir, suffix)
  local t = {}
  for _, name in ipairs(assert(fb.fs.list(dir))) do
    if name:sub(-#suffix) == suffix then t[#t + 1] = dir .. "/" .. name end
  end
  return t
end

local function words(text)
  local t = {}
  for w in text:lower():gmatch("[%a']+") do
    w = w:gsub("^'+", ""):gsub("'+$", "")
    if w ~= "" then t[#t + 1] = w end
  end
  return t
end

local function trigrams(text)
  local w, set, n = words(text), {}, 0
  for i = 1, #w - 2 do
    local g = w[i] .. " " .. w[i + 1] .. " " .. w[i + 2]
    if not set[g] then set[g], n = true, n + 1 end
  end
  return set, n
end

-- Every word of the shipped texts, and each bundled skill's answer trigrams.
local function references()
  local known, skills = {}, {}
  local function learn(text) for _, w in ipairs(words(text)) do known[w] = true end end
  local corpus = fb.root .. "/share/corpus"
  for _, path in ipairs(files(corpus, ".txt")) do learn(read(path)) end
  local chats = files(corpus, ".jsonl")
  for _, id in ipairs(assert(fb.fs.list(fb.root .. "/share/skills"))) do
    chats[#chats + 1] = fb.root .. "/share/skills/" .. id .. "/data.jsonl"
  end
  for _, path in ipairs(chats) do
    local id = path:match("/share/skills/([^/]+)/data%.jsonl$")
    local answers = {}
    for line in io.lines(path) do
      for _, m in ipairs(fb.json.decode(line).messages) do
        learn(m.content)
        if m.role == "assistant" then answers[#answers + 1] = m.content end
      end
    end
    if id then skills[id] = {trigrams = trigrams(table.concat(answers, "\n"))} end
  end
  -- keep each skill's own phrases
  local seen = {}
  for _, s in pairs(skills) do
    for g in pairs(s.trigrams) do seen[g] = (seen[g] or 0) + 1 end
  end
  for _, s in pairs(skills) do
    for g in pairs(s.trigrams) do if seen[g] > 1 then s.trigrams[g] = nil end end
  end
  return known, skills
end

local function check_answer(text, own, known, skills)
  local w, real = words(text), 0
  for _, x in ipairs(w) do if known[x] then real = real + 1 end end
  local grams, n = trigrams(text)
  local scores, best, best_score, second = {}, nil, -1, -1
  for id, s in pairs(skills) do
    local hit = 0
    for g in pairs(grams) do if s.trigrams[g] then hit = hit + 1 end end
    scores[id] = n > 0 and hit / n or 0
    if scores[id] > best_score then
      best, best_score, second = id, scores[id], best_score
    elseif scores[id] > second then
      second = scores[id]
    end
  end
  return {words = #w > 0 and real / #w or 0, scores = scores, closest = best_score > second and best or nil,
          own = best_score > second and best == own}
end

local function main()
  local opts, perr, help = parse(arg)
  if not opts then return args.report(perr, help, "voice-check") end
  if #opts.skills == 0 then opts.skills = assert(fb.fs.list(fb.root .. "/share/skills")) end
  GENERATE.max_tokens = opts.max_tokens or GENERATE.max_tokens
  local known, skills = references()
  local m <close> = assert(fb.model.load(opts.model))
  local out = opts.out or os.tmpname()
  if not opts.out then os.remove(out) end
  local pass = true
  for _, id in ipairs(opts.skills) do
    local dir = fb.root .. "/share/skills/" .. id
    local skill = fb.json.decode(read(dir .. "/skill.json"))
    local adapter, drop_ok = nil, true
    if not opts.base then
      adapter = out .. "/" .. id
      local started = fb.now()
      local summary, err, where = fb.train.run({model = opts.model, data = dir .. "/data.jsonl", out = adapter,
                                                checkpoints = adapter .. "/checkpoints", lr = opts.lr,
                                                epochs = opts.epochs})
      if not summary then
        io.stderr:write("voice-check: ", id, ": ", tostring(where), ": ", tostring(err), "\n")
        return 1
      end
      local drop = summary.base_eval_loss - summary.eval_loss
      drop_ok = drop >= opts.min_drop
      print(string.format("%s: LoRA (lr %g, %d epochs): %d steps in %.0f s, loss %.3f; held-out loss %.3f, base model " ..
        "%.3f: %.2f lower (>= %.2f)", id, summary.spec.lr, summary.spec.epochs, summary.steps,
        (fb.now() - started) / 1000, summary.final_loss, summary.eval_loss, summary.base_eval_loss, drop, opts.min_drop))
    end
    local sum_words, own = 0, 0
    for _, prompt in ipairs(skill.sample_prompts) do
      local o = {adapter = adapter, system = skill.system}
      for k, v in pairs(GENERATE) do o[k] = v end
      local text = assert(m:generate(prompt, o))
      local r = check_answer(text, id, known, skills)
      sum_words, own = sum_words + r.words, own + (r.own and 1 or 0)
      local scores = {}
      for sid, s in pairs(r.scores) do scores[#scores + 1] = string.format("%s %.2f", sid, s) end
      table.sort(scores)
      print(string.format("  %s\n  -> %s\n     words %.2f, own phrases: %s -> %s", prompt, text:gsub("\n", "\n     "), r.words,
        table.concat(scores, ", "), r.own and "own voice" or ("closest: " .. tostring(r.closest))))
    end
    local n = #skill.sample_prompts
    local ok = sum_words / n >= opts.min_words and own / n >= opts.min_own and drop_ok
    print(string.format("%s: words %.2f (>= %.2f), own voice %d/%d (>= %.0f%%): %s", id, sum_words / n,
      opts.min_words, own, n, opts.min_own * 100, ok and "pass" or "FAIL"))
    pass = pass and ok
  end
  if not opts.out then fb.fs.remove_tree(out) end
  return pass and 0 or 1
end

fb.exit(main())
