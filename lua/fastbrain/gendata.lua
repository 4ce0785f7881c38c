-- fastbrain.gendata: new training examples for a skill from a provider chain. Builds the
-- prompt from the skill's description and a few existing examples, parses and validates what
-- comes back, drops exact and near duplicates, and appends the kept ones to the dataset file
-- atomically, in the file's own shape (messages, ShareGPT or Alpaca).
local fb = require "fastbrain"
local json = fb.json

local M = {
  max_chars = 4000,   -- per message
  near_duplicate = 0.8,  -- word-trigram Jaccard similarity of the user turns at which a new example is dropped
  MAX_CALLS = 120,    -- provider requests per task, whatever the count and batch
}

local ROLES = {system = true, user = true, assistant = true}
local SHAREGPT_ROLE = {human = "user", gpt = "assistant", system = "system"}

-- Any supported line -> {messages = {...}}, or nil and why.
function M.to_messages(obj)
  if type(obj) ~= "table" then return nil, "not a JSON object" end
  if type(obj.messages) == "table" then return {messages = obj.messages} end
  if type(obj.conversations) == "table" then
    local msgs = {}
    for i, turn in ipairs(obj.conversations) do
      if type(turn) ~= "table" then return nil, ("conversations[%d]: not an object"):format(i - 1) end
      msgs[i] = {role = SHAREGPT_ROLE[turn.from] or tostring(turn.from), content = turn.value}
    end
    return {messages = msgs}
  end
  if obj.instruction ~= nil and obj.output ~= nil then
    local user = tostring(obj.instruction)
    if type(obj.input) == "string" and obj.input ~= "" then user = user .. "\n\n" .. obj.input end
    local msgs = {}
    if type(obj.system) == "string" and obj.system ~= "" then msgs[1] = {role = "system", content = obj.system} end
    msgs[#msgs + 1] = {role = "user", content = user}
    msgs[#msgs + 1] = {role = "assistant", content = obj.output}
    return {messages = msgs}
  end
  return nil, "not in messages, conversations or instruction/output shape"
end

-- The file's shape name from its first example ("messages", "sharegpt", "alpaca").
function M.shape_of(obj)
  if type(obj) ~= "table" then return "messages" end
  if obj.conversations then return "sharegpt" end
  if obj.instruction then return "alpaca" end
  return "messages"
end

-- {messages} -> a line object in `shape`.
function M.from_messages(ex, shape)
  local msgs = ex.messages
  if shape == "sharegpt" then
    local back = {user = "human", assistant = "gpt", system = "system"}
    local conv = {}
    for i, m in ipairs(msgs) do conv[i] = {from = back[m.role], value = m.content} end
    return {conversations = conv}
  elseif shape == "alpaca" then
    local out = {input = ""}
    for _, m in ipairs(msgs) do
      if m.role == "system" then out.system = m.content
      elseif m.role == "user" and not out.instruction then out.instruction = m.content
      elseif m.role == "assistant" and not out.output then out.output = m.content end
    end
    return out
  end
  local copy = {}
  for i, m in ipairs(msgs) do copy[i] = {role = m.role, content = m.content} end
  return {messages = copy}
end

-- Check one example in messages form: roles, order, non-empty text, lengths.
function M.validate(ex)
  local msgs = ex.messages
  if type(msgs) ~= "table" or #msgs == 0 then return nil, "no messages" end
  local users, answers = 0, 0
  for i, m in ipairs(msgs) do
    local where = ("messages[%d]"):format(i - 1)
    if type(m) ~= "table" then return nil, where .. ": not an object" end
    if not ROLES[m.role] then return nil, ("%s.role: %q is not one of system, user, assistant"):format(where, tostring(m.role)) end
    if m.role == "system" and i ~= 1 then return nil, where .. ".role: system only comes first" end
    if type(m.content) ~= "string" or not m.content:find("%S") then return nil, where .. ".content: empty" end
    if #m.content > M.max_chars then return nil, ("%s.content: longer than %d characters"):format(where, M.max_chars) end
    if m.role == "user" then users = users + 1 elseif m.role == "assistant" then answers = answers + 1 end
  end
  if users == 0 then return nil, "no user turn" end
  if answers == 0 then return nil, "no assistant answer" end
  if msgs[#msgs].role ~= "assistant" then return nil, "does not end with an assistant answer" end
  return true
end

local function user_text(ex)
  local parts = {}
  for _, m in ipairs(ex.messages) do if m.role == "user" then parts[#parts + 1] = m.content end end
  return table.concat(parts, "\n"):lower()
end

local function trigrams(text)
  local words, set, n = {}, {}, 0
  for w in text:gmatch("[%w']+") do words[#words + 1] = w end
  if #words < 3 then set[table.concat(words, " ")] = true; return set, 1 end
  for i = 1, #words - 2 do
    local g = words[i] .. " " .. words[i + 1] .. " " .. words[i + 2]
    if not set[g] then set[g] = true; n = n + 1 end
  end
  return set, n
end

-- Jaccard similarity of the word trigrams of two texts (1 = same words in the same order).
function M.similarity(a, b)
  local sa, na = trigrams(a)
  local sb, nb = trigrams(b)
  local common = 0
  for g in pairs(sa) do if sb[g] then common = common + 1 end end
  local union = na + nb - common
  return union == 0 and 1.0 or common / union
end

-- Parse a provider's reply: JSON lines, or a JSON array, possibly inside a ``` fence.
function M.parse_reply(text)
  local body = text:match("```%w*\n(.-)```") or text
  local items, errors = {}, {}
  local arr = json.decode(body)
  if type(arr) == "table" and json.is_array(arr) then
    items = arr
  else
    for line in body:gmatch("[^\n]+") do
      if line:find("%S") then
        local obj, err = json.decode(line)
        if obj == nil then errors[#errors + 1] = err else items[#items + 1] = obj end
      end
    end
  end
  return items, errors
end

function M.build_request(skill, examples, n)
  local shown = {}
  for i = 1, math.min(3, #examples) do shown[i] = json.encode(M.from_messages(examples[i], "messages")) end
  return {
    system = "You write training data for a small assistant model. Reply with JSON lines only: one "
      .. 'object per line of the form {"messages":[{"role":"system","content":...},{"role":"user",'
      .. '"content":...},{"role":"assistant","content":...}]}. No commentary.',
    messages = {{role = "user", content = ("Skill: %s\nDescription: %s\nSystem prompt the assistant uses: %s\n\n"
      .. "Existing examples:\n%s\n\nWrite %d new, varied, realistic examples in the same voice. "
      .. "Do not repeat the existing ones."):format(skill.name or skill.id or "?", skill.description or "",
        skill.system or "", table.concat(shown, "\n"), n)}},
    max_tokens = 400 * n,
    temperature = 0.9,
  }
end

-- generate{chain=, skill=, data_path=, count=, batch=5, max_rounds=, on_progress=fn(report),
-- stopped=fn() -> true to stop before the next provider call}
-- -> report {kept, dropped = {reason = n}, by_provider = {name = n}, provider (the last one
-- used), fallbacks = {...}, calls (provider requests made), error (when the chain gave up)} or
-- nil, err. At most 3 rounds per batch the count needs, and never more than MAX_CALLS.
-- Runs inside a coroutine (the chain yields on the network).
function M.generate(opts)
  local text, rerr = fb.fs.read(opts.data_path)
  if not text then return nil, rerr end
  local existing, shape = {}, nil
  for line in text:gmatch("[^\n]+") do
    local obj = json.decode(line)
    if obj then
      shape = shape or M.shape_of(obj)
      local ex = M.to_messages(obj)
      if ex then existing[#existing + 1] = ex end
    end
  end
  shape = shape or "messages"
  local seen = {}
  for i, ex in ipairs(existing) do seen[i] = user_text(ex) end

  local report = {kept = 0, dropped = {}, by_provider = {}, fallbacks = json.array()}
  local function drop(reason) report.dropped[reason] = (report.dropped[reason] or 0) + 1 end
  local new_lines = {}
  local batch = opts.batch or 5
  assert(math.tointeger(batch) and batch >= 1, "gendata.generate: batch must be a positive integer")
  local max_rounds = math.min(opts.max_rounds or math.ceil(opts.count / batch) * 3, M.MAX_CALLS)
  report.calls = 0
  while report.kept < opts.count and report.calls < max_rounds and not (opts.stopped and opts.stopped()) do
    report.calls = report.calls + 1
    local want = math.min(batch, opts.count - report.kept)
    local res, err = opts.chain:request(M.build_request(opts.skill, existing, want))
    if not res then
      report.error = err.message
      break
    end
    report.provider = res.provider  -- the one in use now
    for _, f in ipairs(res.fallbacks) do report.fallbacks[#report.fallbacks + 1] = f end
    local items, parse_errors = M.parse_reply(res.text)
    for _ = 1, #parse_errors do drop("not JSON") end
    for _, obj in ipairs(items) do
      local ex, why = M.to_messages(obj)
      local ok, verr
      if ex then ok, verr = M.validate(ex) end
      if not ex then drop(why)
      elseif not ok then drop(verr)
      elseif report.kept >= opts.count then drop("more than asked")
      else
        local u, dup = user_text(ex), nil
        for _, s in ipairs(seen) do
          if s == u then dup = "exact duplicate"; break end
          if M.similarity(s, u) >= M.near_duplicate then dup = "near duplicate"; break end
        end
        if dup then drop(dup) else
          seen[#seen + 1] = u
          existing[#existing + 1] = ex
          new_lines[#new_lines + 1] = json.encode(M.from_messages(ex, shape))
          report.kept = report.kept + 1
          report.by_provider[res.provider] = (report.by_provider[res.provider] or 0) + 1
        end
      end
    end
    if opts.on_progress then opts.on_progress(report) end
  end
  if #new_lines > 0 then
    local sep = (text == "" or text:sub(-1) == "\n") and "" or "\n"
    local ok, werr = fb.fs.write_atomic(opts.data_path, text .. sep .. table.concat(new_lines, "\n") .. "\n")
    if not ok then return nil, werr end
  end
  return report
end

return M
