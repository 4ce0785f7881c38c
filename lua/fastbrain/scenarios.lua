-- fastbrain.scenarios: a skill's test scenarios (skills/<id>/scenarios.jsonl) and their hard
-- checks. A scenario is one JSON object a line:
--   {"id": "burst-pipe", "messages": [{"role": "user", "content": "..."}],
--    "checks": {"must_include": [...], "must_include_any": [...], "must_not_include": [...],
--               "regex": "...", "max_words": 80, "ends_with_question": true},
--    "rubric": "plain-language criteria for the judge"}
-- messages: one or more turns (system, user, assistant) ending with a user turn. Every check is
-- optional, but a scenario has at least one check or a rubric. Text checks ignore case; regex
-- is POSIX extended (fastbrain.regex: \d, \w, \s, \b), case-insensitive.
--   parse(text) -> scenarios | nil, problems ({{line =, message =}}, message naming the field)
--   check_one(value) -> scenario | nil, message: one scenario, as the API takes it
--   encode(scenarios) -> JSONL text
--   verdicts(answer, checks) -> {{check =, pass =, detail =}...}, passed (all of them)
--   with_system(messages, system) -> messages as they are asked: after the skill's system
--     prompt, unless they start with their own (or system is nil or "")
local fb = require "fastbrain"
local regex = require "fastbrain.regex"

local M = {MAX_SCENARIOS = 200, MAX_TEXT = 8000, MAX_RUBRIC = 2000, MAX_TERMS = 20}

local ROLES = {system = true, user = true, assistant = true}

local function valid_id(id)
  return type(id) == "string" and #id <= 64 and id:find("^[a-z0-9_-]+$") ~= nil
end

local function is_list(v) return type(v) == "table" and (next(v) == nil or fb.json.is_array(v)) end

-- A list of 1..MAX_TERMS non-empty strings -> nil | problem
local function terms(v)
  if not is_list(v) or #v == 0 or #v > M.MAX_TERMS then
    return ("a list of 1 to %d strings"):format(M.MAX_TERMS)
  end
  for i, s in ipairs(v) do
    if type(s) ~= "string" or not s:find("%S") then return ("[%d]: a non-empty string"):format(i) end
  end
end

local CHECKS = {
  must_include = terms,
  must_include_any = terms,
  must_not_include = terms,
  regex = function(v)
    if type(v) ~= "string" or v == "" then return "a non-empty string" end
    local re, err = regex.compile(v, {icase = true})
    if not re then return "not a valid regular expression: " .. err end
  end,
  max_words = function(v)
    if not (math.tointeger(v) and v >= 1) then return "an integer >= 1" end
  end,
  ends_with_question = function(v)
    if type(v) ~= "boolean" then return "true or false" end
  end,
}
M.CHECK_NAMES = {"must_include", "must_include_any", "must_not_include", "regex", "max_words", "ends_with_question"}

local function check_messages(messages)
  if not is_list(messages) or #messages == 0 then return "messages: a non-empty list of turns" end
  for i, m in ipairs(messages) do
    local at = ("messages[%d]"):format(i)
    if type(m) ~= "table" or not ROLES[m.role] then return at .. ".role: system, user or assistant" end
    if type(m.content) ~= "string" or not m.content:find("%S") or #m.content > M.MAX_TEXT then
      return ("%s.content: a non-empty string of at most %d bytes"):format(at, M.MAX_TEXT)
    end
  end
  if messages[#messages].role ~= "user" then return "messages: the last turn must be the user's" end
end

function M.check_one(s)
  if type(s) ~= "table" or is_list(s) then return nil, "a JSON object expected" end
  if not valid_id(s.id) then return nil, "id: [a-z0-9_-]{1,64}" end
  local problem = check_messages(s.messages)
  if problem then return nil, problem end
  local checks = s.checks
  if checks ~= nil then
    if type(checks) ~= "table" or (next(checks) and is_list(checks)) then return nil, "checks: an object" end
    for name, v in pairs(checks) do
      local rule = CHECKS[name]
      if not rule then
        return nil, ("checks.%s: unknown (known: %s)"):format(tostring(name), table.concat(M.CHECK_NAMES, ", "))
      end
      problem = rule(v)
      if problem then return nil, ("checks.%s: %s"):format(name, problem) end
    end
  end
  if s.rubric ~= nil and (type(s.rubric) ~= "string" or not s.rubric:find("%S") or #s.rubric > M.MAX_RUBRIC) then
    return nil, ("rubric: a non-empty string of at most %d bytes"):format(M.MAX_RUBRIC)
  end
  if not (checks and next(checks)) and not s.rubric then return nil, "checks or rubric: a scenario needs one" end
  for k in pairs(s) do
    if k ~= "id" and k ~= "messages" and k ~= "checks" and k ~= "rubric" then
      return nil, ("%s: unknown field (id, messages, checks, rubric)"):format(tostring(k))
    end
  end
  return s
end

function M.parse(text)
  local list, problems, seen, n = {}, {}, {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:find("%S") then
      local v, err = fb.json.decode(line)
      local s, problem
      if err then problem = "not valid JSON: " .. err else s, problem = M.check_one(v) end
      if s and seen[s.id] then s, problem = nil, ("id: %q is also line %d's"):format(s.id, seen[s.id]) end
      if s then
        seen[s.id] = n
        list[#list + 1] = s
      else
        problems[#problems + 1] = {line = n, message = problem}
      end
    end
  end
  if #list > M.MAX_SCENARIOS then
    problems[#problems + 1] = {line = fb.json.null, message = ("at most %d scenarios"):format(M.MAX_SCENARIOS)}
  end
  if #problems > 0 then return nil, problems end
  return list
end

function M.encode(list)
  local lines = {}
  for i, s in ipairs(list) do lines[i] = fb.json.encode(s) end
  lines[#lines + 1] = ""
  return table.concat(lines, "\n")
end

local function words(text)
  local n = 0
  for _ in text:gmatch("%S+") do n = n + 1 end
  return n
end

local function quoted(list) return "'" .. table.concat(list, "', '") .. "'" end

-- The terms of list that text (lowered) holds, and those it does not.
local function split_terms(text, list)
  local found, missing = {}, {}
  for _, term in ipairs(list) do
    local into = text:find(term:lower(), 1, true) and found or missing
    into[#into + 1] = term
  end
  return found, missing
end

local VERDICTS = {
  must_include = function(text, v)
    local _, missing = split_terms(text:lower(), v)
    return #missing == 0, #missing > 0 and "missing " .. quoted(missing) or "has all"
  end,
  must_include_any = function(text, v)
    local found = split_terms(text:lower(), v)
    return #found > 0, #found > 0 and "has " .. quoted(found) or "none of " .. quoted(v)
  end,
  must_not_include = function(text, v)
    local found = split_terms(text:lower(), v)
    return #found == 0, #found > 0 and "says " .. quoted(found) or "none of them"
  end,
  regex = function(text, v)
    local ok = regex.compile(v, {icase = true}):test(text)
    return ok, (ok and "matches /%s/" or "does not match /%s/"):format(v)
  end,
  max_words = function(text, v)
    local n = words(text)
    return n <= v, ("%d words (at most %d)"):format(n, v)
  end,
  ends_with_question = function(text, v)
    local asks = text:gsub("[%s\"')%]]+$", ""):sub(-1) == "?"
    return asks == v, asks and "ends with a question" or "does not end with a question"
  end,
}

function M.with_system(messages, system)
  if type(system) ~= "string" or system == "" or (messages[1] and messages[1].role == "system") then
    return messages
  end
  local out = {{role = "system", content = system}}
  for _, m in ipairs(messages) do out[#out + 1] = m end
  return out
end

function M.verdicts(answer, checks)
  local out, passed = {}, true
  for _, name in ipairs(M.CHECK_NAMES) do
    local v = checks and checks[name]
    if v ~= nil then
      local pass, detail = VERDICTS[name](answer, v)
      out[#out + 1] = {check = name, pass = pass, detail = detail}
      passed = passed and pass
    end
  end
  return out, passed
end

return M
