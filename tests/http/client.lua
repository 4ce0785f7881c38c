-- tests/http/client.lua: a small HTTP client for tests that run a server on the same loop.
-- LuaSocket in non-blocking mode, polled every millisecond with fb.sleep so the loop keeps
-- serving; call it inside a coroutine (T.test bodies are). Raw bytes in, parsed replies out.
local socket = require "socket"
local fb = require "fastbrain"

local M = {}

local function wait(deadline, what)
  if fb.now() > deadline then error("http test client: timeout " .. what, 3) end
  fb.sleep(1)
end

function M.connect(port, host)
  local s = assert(socket.tcp())
  s:settimeout(0)
  s:setoption("tcp-nodelay", true)
  local ok, err = s:connect(host or "127.0.0.1", port)
  if not ok and err ~= "timeout" and err ~= "Operation already in progress" then
    error("connect: " .. tostring(err), 2)
  end
  local c = {s = s, buf = "", closed = false}
  return setmetatable(c, {__index = M})
end

function M:send(data, timeout)
  local deadline = fb.now() + (timeout or 3000)
  local i = 1
  while i <= #data do
    local n, err, partial = self.s:send(data, i)
    n = n or partial
    if n and n >= i then i = n + 1 end
    if err == "closed" then return nil, "closed" end
    if i <= #data then wait(deadline, "sending") end
  end
  return true
end

-- Read more bytes into self.buf; false once the peer closed.
function M:fill(deadline)
  local data, err, partial = self.s:receive(65536)
  data = data or partial
  if data and #data > 0 then
    self.buf = self.buf .. data
    return true
  end
  if err == "closed" then
    self.closed = true
    return false
  end
  wait(deadline, "reading")
  return true
end

-- One response parsed from the buffer, or nil if incomplete.
local function parse(buf, closed, head_only)
  local head_end = buf:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local head = buf:sub(1, head_end - 1)
  local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d)"))
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+): *([^\r\n]*)") do headers[k:lower()] = v end
  local pos = head_end + 4
  local res = {status = status, headers = headers}
  if status == 304 or status == 204 or status < 200 or head_only then
    res.body = ""
    return res, pos
  end
  if headers["content-length"] then
    local n = tonumber(headers["content-length"])
    if #buf - pos + 1 < n then return nil end
    res.body = buf:sub(pos, pos + n - 1)
    return res, pos + n
  end
  if (headers["transfer-encoding"] or ""):lower() == "chunked" then
    local parts = {}
    while true do
      local line_end = buf:find("\r\n", pos, true)
      if not line_end then return nil end
      local size = tonumber(buf:sub(pos, line_end - 1):match("^%x+"), 16)
      if #buf < line_end + 1 + size + 2 then return nil end
      parts[#parts + 1] = buf:sub(line_end + 2, line_end + 1 + size)
      pos = line_end + 2 + size + 2
      if size == 0 then break end
    end
    res.body = table.concat(parts)
    return res, pos
  end
  if not closed then return nil end
  res.body = buf:sub(pos)
  return res, #buf + 1
end

-- Read one response: {status, headers, body}; head: it answers a HEAD (no body follows).
function M:read(timeout, head)
  local deadline = fb.now() + (timeout or 3000)
  while true do
    local res, next_pos = parse(self.buf, self.closed, head)
    if res then
      self.buf = self.buf:sub(next_pos)
      return res
    end
    if self.closed then return nil, "closed" end
    self:fill(deadline)
  end
end

-- Read until the buffer holds `pattern` (for streams); returns the buffer.
function M:read_until(pattern, timeout)
  local deadline = fb.now() + (timeout or 3000)
  while not self.buf:find(pattern, 1, true) do
    if not self:fill(deadline) then break end
  end
  return self.buf
end

-- True when the server closed the connection within `ms`.
function M:closed_within(ms)
  local deadline = fb.now() + ms
  while not self.closed and fb.now() < deadline do
    local data, err, partial = self.s:receive(65536)
    data = data or partial
    if data and #data > 0 then self.buf = self.buf .. data end
    if err == "closed" then self.closed = true else fb.sleep(2) end
  end
  return self.closed
end

function M:close() self.s:close() end

-- request(port, method, path, {headers=, body=}) -> response (a fresh connection each time).
function M.request(port, method, path, opts)
  opts = opts or {}
  local c = M.connect(port, opts.host_addr)
  local lines = {("%s %s HTTP/1.1"):format(method, path), "Host: " .. (opts.host or "127.0.0.1")}
  local headers = opts.headers or {}
  if opts.body then
    headers["Content-Length"] = #opts.body
    if not headers["Content-Type"] then headers["Content-Type"] = "application/json" end
  end
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (opts.body or ""))
  local res, err = c:read(opts.timeout, method == "HEAD")
  c:close()
  if not res then error("no response: " .. tostring(err), 2) end
  return res
end

return M
