-- fastbrain.keys: API keys from the environment or a keys file (VAR=value lines) that must be
-- mode 0600; the environment wins. set() writes one key into the file (the dashboard's key
-- form). Values are never returned in messages: errors name the variable, and redact()
-- replaces every known value in a text with [VAR].
local fb = require "fastbrain"
local fs = fb.fs

local M = {}
local Keys = {}
Keys.__index = Keys

-- new{file = path|nil, getenv = os.getenv}
function M.new(opts)
  opts = opts or {}
  return setmetatable({file = opts.file, getenv = opts.getenv or os.getenv, seen = {}}, Keys)
end

-- The file's VAR = value pairs; one that does not exist yet holds none.
local function read_file(path)
  if not fs.lstat(path) then return {} end
  local mode, err = fs.mode(path)
  if not mode then return nil, "keys file " .. err end
  if mode & 0x3F ~= 0 then  -- any group or other permission bit
    return nil, ("keys file %s has mode %o; it must be 600 (chmod 600 %s)"):format(path, mode, path)
  end
  local text, rerr = fs.read(path, 1 << 20)
  if not text then return nil, rerr end
  local values, n = {}, 0
  for line in text:gmatch("[^\n]+") do
    n = n + 1
    line = line:gsub("\r$", "")
    if not line:match("^%s*#") and not line:match("^%s*$") then
      local k, v = line:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
      if not k then return nil, ("keys file %s:%d: expected VAR=value"):format(path, n) end
      values[k] = v:match('^"(.*)"$') or v
    end
  end
  return values
end

-- get(var) -> value | nil, "VAR is not set (environment or keys file)"
function Keys:get(var)
  local v = self.getenv(var)
  if not v or v == "" then
    if self.file then
      if not self.file_values then
        local values, err = read_file(self.file)
        if not values then return nil, err end
        self.file_values = values
      end
      v = self.file_values[var]
    end
  end
  if not v or v == "" then
    return nil, var .. " is not set (environment" .. (self.file and " or " .. self.file or "") .. ")"
  end
  self.seen[var] = v
  return v
end

-- Where var's value comes from: "environment", "file" | nil, why it is not set.
function Keys:source(var)
  local v = self.getenv(var)
  if v and v ~= "" then return "environment" end
  local value, err = self:get(var)
  if value then return "file" end
  return nil, err
end

-- A value the keys file can hold on one line, unquoted.
function M.check_value(value)
  if type(value) ~= "string" or not value:find("^[%w%-_%.~+/=:]+$") or #value > 1000 then
    return "must be 1..1000 letters, digits or -_.~+/=:"
  end
end

local written = 0

-- set(var, value) -> true | nil, err: var's line in the keys file replaced (or added), the file
-- written whole as mode 0600 from its first byte: a shell with umask 077 creates the temp file
-- (the value goes on its stdin, never in an argument), renamed over the old one. In a coroutine.
function Keys:set(var, value)
  assert(self.file, "keys: no keys file")
  local lines, text = {}, fs.read(self.file) or ""
  for line in text:gmatch("[^\n]+") do
    if line:match("^%s*([%w_]+)%s*=") ~= var then lines[#lines + 1] = line end
  end
  lines[#lines + 1] = var .. "=" .. value
  lines[#lines + 1] = ""
  local ok, err = fs.mkdir_p(self.file:match("^(.*)/[^/]*$") or ".")
  if not ok then return nil, err end
  written = written + 1
  local tmp = ("%s.new-%d"):format(self.file, written)
  local r, perr = require("fastbrain.process").run{argv = {"/bin/sh", "-c", 'umask 077 && cat > "$1"', "sh", tmp},
                                                   stdin = table.concat(lines, "\n"), timeout_ms = 10000}
  if not (r and r.code == 0) then
    os.remove(tmp)
    return nil, "cannot write the keys file " .. self.file .. ": " .. (perr or r.stderr)
  end
  ok, err = os.rename(tmp, self.file)
  if not ok then
    os.remove(tmp)
    return nil, err
  end
  self.file_values = nil  -- read again at the next get
  return true
end

-- Replace every key value this object has handed out with [VAR].
function Keys:redact(text)
  for var, value in pairs(self.seen) do
    if #value >= 4 then
      text = text:gsub(value:gsub("%p", "%%%0"), "[" .. var .. "]")
    end
  end
  return text
end

return M
