-- fastbrain.http_client: outbound HTTP/1.1 and HTTPS requests on cosockets. Call request()
-- inside a coroutine (a route handler, fb.spawn, a workflow): it yields while waiting, so the
-- loop keeps serving. Connect and total timeouts, a body cap, TLS verification on by default,
-- no redirects unless asked (Authorization dropped on a hop to another origin), a streaming
-- mode that hands the body on chunk by chunk (downloads of many GB), http_proxy/https_proxy/
-- no_proxy honoured.
local cosocket = require "fastbrain.cosocket"
local fb = require "fastbrain"

local M = {
  max_body = 16 * 1024 * 1024,
  timeout = 60000,          -- ms for the whole exchange (to the head when streaming)
  idle_timeout = 30000,     -- ms a streamed body may go without data
  connect_timeout = 10000,  -- ms to connect (and finish TLS)
}

local MAX_HEADER_BYTES, MAX_HEADERS = 64 * 1024, 200

-- parse_url("https://h:8443/p?q") -> {scheme, host, port, target}
function M.parse_url(url)
  local scheme, rest = url:match("^(https?)://(.+)$")
  if not scheme then return nil, "unsupported URL (need http:// or https://): " .. url end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" or target:sub(1, 1) == "?" then target = "/" .. target end
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:@]+):?(%d*)$") end
  if not host or host == "" then return nil, "URL has no host: " .. url end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  return {scheme = scheme, host = host, port = port, target = target}
end

local function host_header(u)
  local h = u.host:find(":", 1, true) and "[" .. u.host .. "]" or u.host
  if (u.scheme == "http" and u.port ~= 80) or (u.scheme == "https" and u.port ~= 443) then
    h = h .. ":" .. u.port
  end
  return h
end

M.getenv = os.getenv  -- replaceable, for tests of the proxy variables

local function getenv2(name) return M.getenv(name) or M.getenv(name:upper()) end

-- The proxy URL for a target, or nil (no_proxy: comma list of host suffixes, or "*").
function M.proxy_for(u)
  local no_proxy = getenv2("no_proxy")
  if no_proxy then
    for entry in no_proxy:gmatch("[^,%s]+") do
      if entry == "*" then return nil end
      entry = entry:gsub("^%.", ""):lower()
      local host = u.host:lower()
      if host == entry or host:sub(-#entry - 1) == "." .. entry then return nil end
    end
  end
  local proxy = getenv2(u.scheme == "https" and "https_proxy" or "http_proxy")
  if proxy and proxy ~= "" then return proxy end
  return nil
end

local function read_headers(sock)
  local headers, count, bytes = {}, 0, 0
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, "reading headers: " .. err end
    bytes = bytes + #line + 2
    if bytes > MAX_HEADER_BYTES then return nil, "response headers larger than " .. MAX_HEADER_BYTES .. " bytes" end
    if line == "" then return headers end
    count = count + 1
    if count > MAX_HEADERS then return nil, "more than " .. MAX_HEADERS .. " response headers" end
    local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
    if not name then return nil, "malformed header line: " .. line:sub(1, 80) end
    name = name:lower()
    headers[name] = headers[name] and headers[name] .. ", " .. value or value
  end
end

local CHUNK = 256 * 1024  -- the most one read hands on

-- Read exactly n bytes, emitting them as they arrive -> true | nil, err
local function pump_exact(sock, n, what, emit)
  local got = 0
  while got < n do
    local data, err = sock:receive_some(math.min(n - got, CHUNK))
    if not data then
      if err == "closed" then return nil, ("truncated %s (got %d of %d bytes)"):format(what, got, n) end
      return nil, "reading " .. what .. ": " .. err
    end
    got = got + #data
    local ok, eerr = emit(data)
    if not ok then return nil, eerr end
  end
  return true
end

local function pump_chunked(sock, emit)
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, "reading chunk size: " .. (err == "closed" and "truncated body" or err) end
    local size = tonumber(line:match("^(%x+)"), 16)
    if not size then return nil, "malformed chunk size: " .. line:sub(1, 40) end
    if size == 0 then
      repeat  -- trailers, up to the blank line
        line, err = sock:receive("*l")
        if not line then return nil, "reading trailers: " .. err end
      until line == ""
      return true
    end
    local ok, cerr = pump_exact(sock, size, "chunk", emit)
    if not ok then return nil, cerr end
    local crlf = sock:receive("*l")
    if crlf ~= "" then return nil, "malformed chunk terminator" end
  end
end

local function pump_until_close(sock, emit)
  while true do
    local data, err = sock:receive_some(CHUNK)
    if not data then
      if err == "closed" then return true end
      return nil, "reading body: " .. err
    end
    local ok, eerr = emit(data)
    if not ok then return nil, eerr end
  end
end

-- Hand the body to emit(data) -> true | nil, err as it arrives. limit: a content-length above
-- it fails before any read (the in-memory cap).
local function pump_body(sock, method, status, headers, emit, limit)
  if method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200) then
    return true
  end
  local te = headers["transfer-encoding"]
  if te then
    if te:lower() ~= "chunked" then return nil, "unsupported transfer-encoding: " .. te end
    return pump_chunked(sock, emit)
  end
  local len = headers["content-length"]
  if len then
    local n = tonumber(len)
    if not n or n < 0 or n ~= math.floor(n) or len:find(",") then return nil, "invalid content-length: " .. len end
    if limit and n > limit then return nil, "response body larger than " .. limit .. " bytes" end
    return pump_exact(sock, n, "body", emit)
  end
  return pump_until_close(sock, emit)
end

-- The whole body as a string, under max_body -> body | nil, err
local function read_body(sock, method, status, headers, max_body)
  local parts, total = {}, 0
  local ok, err = pump_body(sock, method, status, headers, function(data)
    total = total + #data
    if total > max_body then return nil, "response body larger than " .. max_body .. " bytes" end
    parts[#parts + 1] = data
    return true
  end, max_body)
  if not ok then return nil, err end
  return table.concat(parts)
end

-- The body handed to write(chunk) -> true | nil, err; each read may wait idle ms for data.
-- -> true | nil, err [, true when write stopped it]
local function stream_body(sock, method, status, headers, write, idle)
  sock:settimeout(idle)
  local ok, err = pump_body(sock, method, status, headers, function(data)
    local wok, werr = write(data)
    if not wok then return nil, {stopped = werr or "stopped"} end
    sock:settimeout(idle)
    return true
  end)
  if ok then return true end
  if type(err) == "table" then return nil, err.stopped, true end
  if err:find("timeout$") then err = err:gsub("timeout$", ("no data for %d ms"):format(idle)) end
  return nil, err
end

-- Open a connection to the origin, directly or through the proxy (CONNECT for https).
local function open(u, opts, deadline)
  local proxy = opts.proxy == nil and M.proxy_for(u) or opts.proxy or nil
  local via = proxy and M.parse_url(proxy)
  local target = via or u
  local sock, err = cosocket.connect(target.host, target.port, {timeout = opts.connect_timeout or M.connect_timeout})
  if not sock then return nil, err end
  sock.deadline = deadline
  if via and u.scheme == "https" then
    local hp = host_header({scheme = "http", host = u.host, port = u.port == 80 and 0 or u.port})
    local ok, serr = sock:send(("CONNECT %s:%d HTTP/1.1\r\nHost: %s\r\n\r\n"):format(
      u.host:find(":", 1, true) and "[" .. u.host .. "]" or u.host, u.port, hp))
    if not ok then sock:close(); return nil, "proxy: " .. serr end
    local line = sock:receive("*l")
    local code = line and tonumber(line:match("^HTTP/1%.[01] (%d%d%d)"))
    local headers = code and read_headers(sock)
    if code ~= 200 or not headers then
      sock:close()
      return nil, "proxy CONNECT refused: " .. tostring(line)
    end
  end
  if u.scheme == "https" then
    local ok, terr = sock:starttls(u.host, opts.tls)
    if not ok then sock:close(); return nil, terr end
  end
  return sock, nil, via ~= nil and u.scheme == "http"
end

-- One request and its response. follows(status, headers) says whether the caller will follow
-- it (a redirect: its body is read and dropped); otherwise opts.stream may take the body.
local function exchange(u, opts, deadline, follows, url, history)
  local sock, err, absolute = open(u, opts, deadline)
  if not sock then return nil, err end
  local method = (opts.method or "GET"):upper()
  local body = opts.body
  local lines = {("%s %s HTTP/1.1"):format(method,
    absolute and (u.scheme .. "://" .. host_header(u) .. u.target) or u.target)}
  local headers = {host = host_header(u), ["user-agent"] = "fastbrain/" .. fb.version,
                   connection = "close", accept = "*/*"}
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = v end
  if body then headers["content-length"] = tostring(#body) end
  for k, v in pairs(headers) do
    if tostring(v):find("[\r\n]") then sock:close(); return nil, "header " .. k .. " contains a line break" end
    lines[#lines + 1] = k .. ": " .. tostring(v)
  end
  local ok, serr = sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
  if not ok then sock:close(); return nil, "sending request: " .. serr end
  local status_line, rerr = sock:receive("*l")
  if not status_line then sock:close(); return nil, "reading status: " .. rerr end
  local version, status, reason = status_line:match("^HTTP/(1%.[01]) (%d%d%d) ?(.*)$")
  if not version then sock:close(); return nil, "malformed status line: " .. status_line:sub(1, 80) end
  local rheaders, herr = read_headers(sock)
  if not rheaders then sock:close(); return nil, herr end
  status = tonumber(status)
  local res = {status = status, reason = reason, headers = rheaders, url = url, history = history}
  local write = opts.stream and not follows(status, rheaders) and opts.stream(res)
  if write then
    local sok, berr, stopped = stream_body(sock, method, status, rheaders, write, opts.idle_timeout or M.idle_timeout)
    sock:close()
    if not sok then return nil, berr, stopped end
    return res
  end
  local rbody, berr = read_body(sock, method, status, rheaders, opts.max_body or M.max_body)
  sock:close()
  if not rbody then return nil, berr end
  res.body = rbody
  return res
end

local REDIRECTS = {[301] = true, [302] = true, [303] = true, [307] = true, [308] = true}

-- The absolute URL of a Location header, read against the URL that answered with it.
function M.resolve_location(u, location)
  if location:match("^https?://") then return location end
  if location:sub(1, 2) == "//" then return u.scheme .. ":" .. location end
  local origin = u.scheme .. "://" .. host_header(u)
  if location:sub(1, 1) == "/" then return origin .. location end
  local dir = u.target:gsub("[?#].*$", ""):match("^(.*/)") or "/"
  local path, query = (dir .. location):match("^([^?#]*)(.*)$")
  local out = {}  -- RFC 3986 5.2.4: "." and ".." segments go
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then out[#out] = nil elseif seg ~= "." then out[#out + 1] = seg end
  end
  local trailing = path:match("/%.?%.?$") and "/" or ""
  local joined = table.concat(out, "/")
  return origin .. "/" .. joined .. (joined ~= "" and trailing or "") .. query
end

local function same_origin(a, b)
  return a.scheme == b.scheme and a.host:lower() == b.host:lower() and a.port == b.port
end

-- request{url=, method="GET", headers={}, body=, timeout=ms, connect_timeout=ms, max_body=,
--         redirects=0, tls={verify=true, cafile=}, proxy=url|false, stream=fn, idle_timeout=ms}
-- -> {status, reason, headers (lower-case names), body, url, history}, or nil and an error that
-- names the URL's host (never a header value, so keys never leak into messages).
-- Redirects (up to `redirects`) are followed to relative or absolute locations; a hop to
-- another origin (scheme, host or port) drops the Authorization header, as browsers, requests
-- and huggingface_hub do. history lists the redirects followed: {status, headers, url} each.
-- stream(res) is called with the final response's head (status, reason, headers, url,
-- history): a function it returns gets the body chunk by chunk instead of res.body (write(chunk)
-- -> true, or nil and why to stop: the request then fails with that reason and a third value,
-- true); nil reads the body into res.body as usual. A streamed body has no total timeout: each
-- read waits up to idle_timeout (default 30 s) for data; `timeout` then covers connecting and
-- the response head.
function M.request(opts)
  if type(opts) ~= "table" or type(opts.url) ~= "string" then
    error("http_client.request: options table with url expected", 2)
  end
  if opts.stream ~= nil and type(opts.stream) ~= "function" then
    error("http_client.request: stream must be a function", 2)
  end
  local timeout = opts.timeout or M.timeout
  local deadline = fb.now() + timeout
  local url, redirects, history = opts.url, opts.redirects or 0, {}
  local function follows(status, headers)
    return redirects > 0 and REDIRECTS[status] and headers.location ~= nil
  end
  while true do
    local u, perr = M.parse_url(url)
    if not u then return nil, perr end
    local res, err, stopped = exchange(u, opts, deadline, follows, url, history)
    if not res then
      if err:find("timeout") then err = ("timeout after %d ms"):format(timeout) end
      return nil, ("%s %s://%s:%d: %s"):format((opts.method or "GET"):upper(), u.scheme, u.host, u.port, err), stopped
    end
    if not follows(res.status, res.headers) then return res end
    redirects = redirects - 1
    history[#history + 1] = {status = res.status, headers = res.headers, url = url}
    url = M.resolve_location(u, res.headers.location)
    local nu = M.parse_url(url)
    local over = {}
    if res.status == 303 then over.method, over.body = "GET", false end
    if nu and not same_origin(u, nu) and opts.headers then
      local kept = {}
      for k, v in pairs(opts.headers) do
        if k:lower() ~= "authorization" then kept[k] = v end
      end
      over.headers = kept
    end
    if next(over) then opts = setmetatable(over, {__index = opts}) end
  end
end

return M
