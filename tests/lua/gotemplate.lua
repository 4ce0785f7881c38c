-- The part of Go's text/template that fastbrain.ollama's templates use, so that tests render
-- them as Ollama does: text; actions {{ }} with the trim markers "{{- " and " -}}" (all white
-- space on that side goes); if / else if / else / end; range PIPE and range $i, $_ := PIPE
-- (dot is the element, $i counts from 0); and pipelines that are a field (.Role, $.System), a
-- variable ($i), a string or integer literal, or a call of eq, ne, and, or, not, len on such
-- arguments or parenthesised calls. Go's truth: false, 0, "", nil and empty lists are false.
-- Anything else raises, so that a template using more than this is noticed.
--   render(source, data) -> text
local M = {}

-- Text and action items, the trim markers applied to the text beside them.
local function lex(src)
  local items, pos = {}, 1
  while pos <= #src do
    local open = src:find("{{", pos, true)
    local text = src:sub(pos, (open or #src + 1) - 1)
    if open and src:find("^%-%s", open + 2) then text = text:gsub("%s+$", "") end
    if text ~= "" then items[#items + 1] = {text = text} end
    if not open then break end
    local close = src:find("}}", open + 2, true) or error("gotemplate: unclosed action at byte " .. open)
    local body = src:sub(open + 2, close - 1)
    local trim_next = body:find("%s%-$") ~= nil  -- the next text loses its leading white space
    body = body:gsub("^%-%s", ""):gsub("%s%-$", "")
    items[#items + 1] = {action = body:match("^%s*(.-)%s*$")}
    pos = trim_next and (src:find("%S", close + 2) or #src + 1) or close + 2
  end
  return items
end

-- A pipeline's words: ( ) "string" and the rest up to white space or a parenthesis.
local function words(s)
  local list, pos = {}, 1
  while true do
    pos = s:find("%S", pos)
    if not pos then return list end
    local c = s:sub(pos, pos)
    if c == "(" or c == ")" then
      list[#list + 1], pos = c, pos + 1
    elseif c == '"' then
      local stop = s:find('"', pos + 1, true) or error("gotemplate: unclosed string in " .. s)
      list[#list + 1], pos = {str = s:sub(pos + 1, stop - 1)}, stop + 1
    else
      local w = s:match("^[^%s()]+", pos)
      list[#list + 1], pos = w, pos + #w
    end
  end
end

local FUNCS = {eq = true, ne = true, ["and"] = true, ["or"] = true, ["not"] = true, len = true}

-- command := operand | FUNC arg*; arg := operand | ( command )
local function parse_command(list, i, source)
  local function operand()
    local w = list[i]
    i = i + 1
    if w == "(" then
      local cmd
      cmd, i = parse_command(list, i, source)
      if list[i] ~= ")" then error("gotemplate: missing ) in " .. source) end
      i = i + 1
      return cmd
    elseif type(w) == "table" then return {lit = w.str}
    elseif w and w:match("^%-?%d+$") then return {lit = math.tointeger(tonumber(w))}
    elseif w and (w == "." or w:match("^%.%u%w*$") or w:match("^%$%.%u%w*$") or w:match("^%$[%w_]*$")) then return {ref = w}
    end
    error(("gotemplate: unsupported %q in %q"):format(tostring(w), source))
  end
  local w = list[i]
  if type(w) == "string" and FUNCS[w] then
    local call = {fn = w, args = {}}
    i = i + 1
    while list[i] and list[i] ~= ")" do call.args[#call.args + 1] = operand() end
    return call, i
  end
  return operand(), i
end

local function parse_pipe(source)
  local list = words(source)
  local cmd, i = parse_command(list, 1, source)
  if list[i] then error(("gotemplate: unsupported %q in %q"):format(tostring(list[i]), source)) end
  return cmd
end

-- The nodes up to an end or else action -> nodes, the index of that action, its text.
local function parse_list(items, i)
  local nodes = {}
  while items[i] do
    local it = items[i]
    local word, rest = (it.action or ""):match("^(%l+)%s*(.*)$")
    if it.text then
      nodes[#nodes + 1] = {text = it.text}
      i = i + 1
    elseif word == "end" or word == "else" then
      return nodes, i, it.action
    elseif word == "if" then
      local node, cond = {branches = {}}, rest
      while true do
        local body, at, stop = parse_list(items, i + 1)
        node.branches[#node.branches + 1] = {cond = parse_pipe(cond), body = body}
        i = at
        cond = stop and stop:match("^else%s+if%s+(.+)$")
        if stop == "else" then
          node.otherwise, i, stop = parse_list(items, i + 1)
        end
        if stop == "end" then break end
        if not cond then error("gotemplate: if without end") end
      end
      nodes[#nodes + 1], i = node, i + 1
    elseif word == "range" then
      local key, value, pipe = rest:match("^(%$[%w_]*)%s*,%s*(%$[%w_]*)%s*:=%s*(.+)$")
      local body, at, stop = parse_list(items, i + 1)
      if stop ~= "end" then error("gotemplate: range without end") end
      nodes[#nodes + 1] = {range = parse_pipe(pipe or rest), key = key, value = value, body = body}
      i = at + 1
    elseif word == "with" or word == "define" or word == "template" or word == "block" then
      error("gotemplate: unsupported action " .. it.action)
    else
      nodes[#nodes + 1] = {print = parse_pipe(it.action)}
      i = i + 1
    end
  end
  return nodes, i, nil
end

local function truth(v)
  return v ~= nil and v ~= false and v ~= 0 and v ~= "" and not (type(v) == "table" and next(v) == nil)
end

local function eval(e, scope)
  if e.lit ~= nil then return e.lit end
  if e.ref then
    local r = e.ref
    if r == "." then return scope.dot end
    if r:sub(1, 2) == "$." then return scope.vars["$"][r:sub(3)] end
    if r:sub(1, 1) == "." then return scope.dot[r:sub(2)] end
    if scope.vars[r] == nil then error("gotemplate: undefined variable " .. r) end
    return scope.vars[r]
  end
  local a = {}
  for k, arg in ipairs(e.args) do a[k] = eval(arg, scope) end
  if e.fn == "eq" then return a[1] == a[2] end
  if e.fn == "ne" then return a[1] ~= a[2] end
  if e.fn == "not" then return not truth(a[1]) end
  if e.fn == "len" then return #a[1] end
  for k = 1, #a - 1 do  -- and: the first false argument, or the last; or: the first true one
    if truth(a[k]) == (e.fn == "or") then return a[k] end
  end
  return a[#a]
end

local function exec(nodes, scope, out)
  for _, n in ipairs(nodes) do
    if n.text then
      out[#out + 1] = n.text
    elseif n.print then
      local v = eval(n.print, scope)
      if type(v) ~= "string" and math.type(v) ~= "integer" then
        error("gotemplate: printing " .. tostring(v) .. " (a template prints strings here)")
      end
      out[#out + 1] = tostring(v)
    elseif n.branches then
      local taken
      for _, b in ipairs(n.branches) do
        if truth(eval(b.cond, scope)) then taken = b.body break end
      end
      exec(taken or n.otherwise or {}, scope, out)
    else
      for i, item in ipairs(eval(n.range, scope) or {}) do
        local vars = setmetatable({}, {__index = scope.vars})  -- range variables are its own
        if n.key then vars[n.key], vars[n.value] = i - 1, item end
        exec(n.body, {dot = item, vars = vars}, out)
      end
    end
  end
end

function M.render(source, data)
  local items = lex(source)
  local nodes, at = parse_list(items, 1)
  if items[at] then error("gotemplate: unexpected " .. items[at].action) end
  local out = {}
  exec(nodes, {dot = data, vars = {["$"] = data}}, out)
  return table.concat(out)
end

return M
