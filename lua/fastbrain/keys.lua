-- fastbrain.keys: API keys from the environment or a keys file (VAR=value lines) that must be
-- mode 0600. Values are never returned in messages: errors name the variable, and redact()
-- replaces every known value in a text with [VAR].
local fs = require("fastbrain").fs

local M = {}
local Keys = {}
Keys.__index = Keys

-- new{file = path|nil, getenv = os.getenv}
function M.new(opts)
  opts = opts or {}
  return setmetatable({file = opts.file, getenv = opts.getenv or os.getenv, seen = {}}, Keys)
end

local function read_file(path)
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
