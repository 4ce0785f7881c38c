-- fastbrain.lines: JSON objects, one a line, over a cosocket. A channel is used in one
-- direction only: a cosocket parks one coroutine at a time, so a reader waiting on a socket
-- must not share it with a writer (fastbrain.model_server's two connections).
--   writer(sock) -> w: w:send(obj) -> true | nil, err; sends made while one waits queue behind it
--   reader(sock) -> r: r:receive() -> obj | nil, err ("closed" at the end)
local fb = require "fastbrain"

local M = {}

local Writer = {}
Writer.__index = Writer

function M.writer(sock) return setmetatable({sock = sock, queue = {}}, Writer) end

function Writer:send(obj)
  if self.err then return nil, self.err end
  self.queue[#self.queue + 1] = fb.json.encode(obj) .. "\n"
  if self.busy then return true end  -- the coroutine sending now takes it along
  self.busy = true
  while #self.queue > 0 and not self.err do
    local chunk = table.concat(self.queue)
    self.queue = {}
    local ok, err = self.sock:send(chunk)
    if not ok then self.err = err end
  end
  self.busy = false
  if self.err then return nil, self.err end
  return true
end

local Reader = {}
Reader.__index = Reader

function M.reader(sock) return setmetatable({sock = sock}, Reader) end

function Reader:receive()
  local line, err = self.sock:receive("*l")
  if not line then return nil, err end
  local ok, obj = pcall(fb.json.decode, line)
  if not ok or type(obj) ~= "table" then return nil, "not a JSON object: " .. line:sub(1, 80) end
  return obj
end

return M
