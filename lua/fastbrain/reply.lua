-- fastbrain.reply: an answer's text as it is generated, for a client that reads it piece by
-- piece. new(decode, stops) -> reply; reply:push(id) -> piece, stopped: the text the token
-- completes, and true once a stop string appeared (the text ends before it, as OpenAI's `stop`
-- does). A piece never ends inside a UTF-8 character (a token may hold half of one) nor inside
-- what may be the start of a stop string; reply:finish() -> the text held back, once no token
-- follows. reply.text is everything handed out so far.
local M = {}

local Reply = {}
Reply.__index = Reply

-- decode(ids) -> text; stops: a list of strings (may be empty)
function M.new(decode, stops)
  return setmetatable({decode = decode, stops = stops or {}, ids = {}, text = "", done = false}, Reply)
end

-- How many bytes at the end of s are an unfinished UTF-8 character (or the replacement
-- character a decoder writes for one).
local function unfinished(s)
  if s:sub(-3) == "\xEF\xBF\xBD" then return 3 end
  for back = 1, math.min(3, #s) do
    local b = s:byte(#s - back + 1)
    if b < 0x80 then return 0 end
    if b >= 0xC0 then  -- a lead byte: complete when its sequence fits
      local need = b >= 0xF0 and 4 or b >= 0xE0 and 3 or 2
      return back < need and back or 0
    end
  end
  return 0
end

-- The longest end of s that is the start of a stop string.
local function partial_stop(s, stops)
  local longest = 0
  for _, stop in ipairs(stops) do
    for k = math.min(#stop - 1, #s), longest + 1, -1 do
      if s:sub(-k) == stop:sub(1, k) then longest = k; break end
    end
  end
  return longest
end

-- The first stop string in s at or after byte `from` -> its position | nil
local function find_stop(s, stops, from)
  local first
  for _, stop in ipairs(stops) do
    local at = s:find(stop, from, true)
    if at and (not first or at < first) then first = at end
  end
  return first
end

function Reply:push(id)
  assert(not self.done, "fastbrain.reply: push after the stop")
  self.ids[#self.ids + 1] = id
  local full = self.decode(self.ids)
  local longest = 0
  for _, stop in ipairs(self.stops) do longest = math.max(longest, #stop) end
  local at = find_stop(full, self.stops, math.max(1, #self.text - longest + 1))
  if at then
    self.done = true
    local piece = full:sub(#self.text + 1, at - 1)
    self.text = full:sub(1, at - 1)
    return piece, true
  end
  local keep = #full - math.max(unfinished(full), partial_stop(full, self.stops))
  if keep <= #self.text then return "", false end
  local piece = full:sub(#self.text + 1, keep)
  self.text = full:sub(1, keep)
  return piece, false
end

function Reply:finish()
  if self.done or #self.ids == 0 then return "" end
  self.done = true
  local full = self.decode(self.ids)
  local piece = full:sub(#self.text + 1)
  self.text = full
  return piece
end

return M
