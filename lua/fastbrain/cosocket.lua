-- fastbrain.cosocket: LuaSocket (and LuaSec TLS) sockets in non-blocking mode, driven by the
-- libuv loop. Each operation runs inside a coroutine and yields it until the descriptor is
-- ready or the socket's deadline passes, as copas and OpenResty's cosockets do, so requests
-- made from route handlers, timers and workflows never stall the loop.
local socket = require "socket"
local poll = require "fastbrain.poll"
local fb = require "fastbrain"

local M = {}

local Sock = {}
Sock.__index = Sock

local function ip_family(host)
  if host:match("^%d+%.%d+%.%d+%.%d+$") then return "inet" end
  if host:find(":", 1, true) then return "inet6" end
  return nil
end

-- Yield until the descriptor is ready for `mode` ("r" or "w"); true, or nil and "timeout" or an
-- error. The socket's deadline (fb.now() ms) bounds the wait.
function Sock:wait(mode)
  local co, main = coroutine.running()
  if main then error("cosocket: socket operations must run inside a coroutine", 3) end
  local remaining = self.deadline and self.deadline - fb.now()
  if remaining and remaining <= 0 then return nil, "timeout" end
  if not self.watcher then
    local w, err = poll.watch(self.sock:getfd())
    if not w then return nil, err end
    self.watcher = w
  end
  local w, timer, settled = self.watcher, nil, false
  local function settle(ok, err)
    if settled then return end
    settled = true
    w:stop()
    if timer then timer:stop() end
    fb.resume(co, ok, err)
  end
  -- libuv reports a socket error (POLLERR) as a failed poll; the next socket call names the
  -- real error ("connection refused"), so that counts as ready, a few times in a row at most.
  local started, err = w:start(mode, function(_, perr) settle(true, perr) end)
  if not started then return nil, err end
  if remaining then timer = fb.timer.after(math.ceil(remaining), function() settle(false, "timeout") end) end
  local ok, werr = coroutine.yield()
  if not ok then return nil, werr end
  self.poll_errors = werr and (self.poll_errors or 0) + 1 or 0
  if self.poll_errors > 3 then return nil, werr end
  return true
end

-- Would-block answers of LuaSocket ("timeout") and LuaSec ("wantread"/"wantwrite").
local function blocked_on(err)
  if err == "timeout" or err == "wantread" then return "r" end
  if err == "wantwrite" then return "w" end
  return nil
end

-- Set the absolute deadline from now (ms), or none with nil.
function Sock:settimeout(ms)
  self.deadline = ms and fb.now() + ms or nil
end

function Sock:send(data)
  local from = 1
  while true do
    local sent, err, last = self.sock:send(data, from)
    if sent then return sent end
    local mode = blocked_on(err)
    if not mode then return nil, err end
    from = (last or from - 1) + 1
    local ok, werr = self:wait(err == "timeout" and "w" or mode)
    if not ok then return nil, werr end
  end
end

-- receive(pattern): "*l" (a line without its end), "*a" (until close) or a byte count.
function Sock:receive(pattern)
  local acc = ""
  while true do
    local data, err, partial = self.sock:receive(pattern, acc)
    if data then return data end
    if err == "closed" and pattern == "*a" then return partial end
    local mode = blocked_on(err)
    if not mode then return nil, err, partial end
    acc = partial or acc
    local ok, werr = self:wait(mode)
    if not ok then return nil, werr, acc end
  end
end

-- receive_some(max) -> what has arrived, 1 to max bytes, waiting only while nothing has: the
-- streaming read (no copy of a growing prefix); nil, "closed" at the end, or nil and an error.
function Sock:receive_some(max)
  if self.pending_err then
    local err = self.pending_err
    self.pending_err = nil
    return nil, err
  end
  while true do
    local data, err, partial = self.sock:receive(max)
    if data then return data end
    local mode = blocked_on(err)
    if partial and #partial > 0 then
      if not mode then self.pending_err = err end  -- the end comes with the next call
      return partial
    end
    if not mode then return nil, err end
    local ok, werr = self:wait(mode)
    if not ok then return nil, werr end
  end
end

-- Close the watcher before the descriptor (libuv requires it). Idempotent.
function Sock:close()
  if self.watcher then
    self.watcher:close()
    self.watcher = nil
  end
  if self.sock then
    self.sock:close()
    self.sock = nil
  end
end
Sock.__close = Sock.close
Sock.__gc = Sock.close

local function wrap(sock, deadline)
  sock:settimeout(0)
  return setmetatable({sock = sock, deadline = deadline}, Sock)
end

local function resolve(host)
  local family = ip_family(host)
  if family then return {{ip = host, family = family}} end
  local co = coroutine.running()
  local started, err = poll.resolve(host, function(list, rerr) fb.resume(co, list, rerr) end)
  if not started then return nil, err end
  local list, rerr = coroutine.yield()
  if not list or #list == 0 then return nil, "resolve " .. host .. ": " .. tostring(rerr or "no address") end
  return list
end

-- Hostname check for TLS (LuaSec verifies the chain, not the name): RFC 6125 rules with a
-- wildcard allowed only as the whole leftmost label.
local function name_matches(pattern, host)
  pattern, host = pattern:lower(), host:lower()
  if pattern == host then return true end
  local rest = pattern:match("^%*(%..+)$")
  if not rest then return false end
  local host_rest = host:match("^[^.]+(%..+)$")
  return host_rest == rest and select(2, rest:gsub("%.", "")) >= 2
end

local function verify_hostname(conn, host)
  local cert = conn:getpeercertificate()
  if not cert then return nil, "TLS: no peer certificate" end
  local ext = cert:extensions()
  local san = ext and ext["2.5.29.17"]
  if san then
    for _, name in ipairs(san.dNSName or {}) do
      if name_matches(name, host) then return true end
    end
    for _, ip in ipairs(san.iPAddress or {}) do
      if ip == host then return true end
    end
  else
    for _, entry in ipairs(cert:subject()) do
      if entry.name == "commonName" and name_matches(entry.value, host) then return true end
    end
  end
  return nil, "TLS: certificate does not match host " .. host
end

-- Turn a connected plain socket into TLS. opts: verify (default true), cafile, capath.
function Sock:starttls(host, opts)
  opts = opts or {}
  local ssl = require "ssl"
  local verify = opts.verify ~= false
  local params = {
    mode = "client", protocol = "any", options = {"all", "no_sslv2", "no_sslv3", "no_tlsv1"},
    verify = verify and {"peer", "fail_if_no_peer_cert"} or "none",
    cafile = opts.cafile, capath = (not opts.cafile) and (opts.capath or "/etc/ssl/certs") or nil,
  }
  local conn, err = ssl.wrap(self.sock, params)
  if not conn then return nil, "TLS: " .. tostring(err) end
  if not ip_family(host) then conn:sni(host) end
  conn:settimeout(0)
  self.sock = conn
  while true do
    local ok, herr = conn:dohandshake()
    if ok then break end
    local mode = blocked_on(herr)
    if not mode then return nil, "TLS handshake with " .. host .. ": " .. tostring(herr) end
    local ready, werr = self:wait(mode)
    if not ready then return nil, "TLS handshake with " .. host .. ": " .. werr end
  end
  if verify then return verify_hostname(conn, host) end
  return true
end

-- connect(host, port, {timeout = ms}) -> socket, or nil and an error naming host:port. Inside a
-- coroutine. The timeout becomes the socket's deadline for everything that follows.
function M.connect(host, port, opts)
  opts = opts or {}
  if coroutine.isyieldable() == false then error("cosocket.connect: call it inside a coroutine", 2) end
  local deadline = opts.timeout and fb.now() + opts.timeout
  local where = (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":" .. port
  local addrs, err = resolve(host)
  if not addrs then return nil, err end
  local last_err
  for _, addr in ipairs(addrs) do
    local raw = addr.family == "inet6" and socket.tcp6() or socket.tcp()
    local s = wrap(raw, deadline)
    local ok, cerr = raw:connect(addr.ip, port)
    if not ok and cerr == "timeout" then
      local ready, werr = s:wait("w")
      if ready then ok, cerr = raw:connect(addr.ip, port) else cerr = werr end
      if cerr == "already connected" then ok = true end
    end
    if ok then return s end
    s:close()
    last_err = cerr
  end
  return nil, "connect " .. where .. ": " .. tostring(last_err)
end

-- A listening socket whose accept() yields; for local servers in tests and tools.
local Server = {}
Server.__index = Server

function M.listen(host, port)
  local raw = assert(socket.tcp())
  raw:setoption("reuseaddr", true)
  local ok, err = raw:bind(host, port or 0)
  if not ok then return nil, "bind " .. host .. ":" .. tostring(port) .. ": " .. err end
  raw:listen(128)
  local s = wrap(raw)
  local _, bound_port = raw:getsockname()
  return setmetatable({s = s, port = tonumber(bound_port)}, Server)
end

function Server:accept()
  while true do
    local client, err = self.s.sock:accept()
    if client then return wrap(client) end
    if err ~= "timeout" then return nil, err end
    local ok, werr = self.s:wait("r")
    if not ok then return nil, werr end
  end
end

function Server:close() self.s:close() end

return M
