-- fastbrain.http_client and fastbrain.cosocket against local servers on 127.0.0.1: framing,
-- timeouts, caps, errors, TLS verification, proxies, and a loop that keeps running meanwhile.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local cosocket = require "fastbrain.cosocket"
local http = require "fastbrain.http_client"

-- A tiny HTTP/1.1 server on cosockets: routes[path](req, sock) writes a raw response.
local function start_server(routes, wrap_tls)
  local server = assert(cosocket.listen("127.0.0.1", 0))
  fb.spawn(function()
    while true do
      local sock = server:accept()
      if not sock then return end
      fb.spawn(function()
        if wrap_tls then
          local ssl = require "ssl"
          local conn = assert(ssl.wrap(sock.sock, wrap_tls))
          conn:settimeout(0)
          sock.sock = conn
          repeat
            local ok, err = conn:dohandshake()
            if not ok then
              if err ~= "wantread" and err ~= "wantwrite" then sock:close(); return end
              sock:wait(err == "wantread" and "r" or "w")
            end
          until ok
        end
        local line = sock:receive("*l")
        if not line then sock:close(); return end
        local req = {line = line, headers = {}}
        req.method, req.target = line:match("^(%S+) (%S+)")
        while true do
          local h = sock:receive("*l")
          if not h or h == "" then break end
          local k, v = h:match("^([^:]+):%s*(.*)$")
          req.headers[k:lower()] = v
        end
        local n = tonumber(req.headers["content-length"] or 0)
        req.body = n > 0 and sock:receive(n) or ""
        local path = req.target:match("^https?://[^/]+(/.*)$") or req.target
        local route = routes[path:match("^[^?]*")]
        if route then route(req, sock) else sock:send("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n") end
        sock:close()
      end)
    end
  end)
  return server
end

local function reply(body, extra)
  return function(_, sock)
    sock:send("HTTP/1.1 200 OK\r\n" .. (extra or "") .. "Content-Length: " .. #body .. "\r\n\r\n" .. body)
  end
end

local routes = {
  ["/plain"] = reply("hello", "X-Twice: a\r\nx-twice: b\r\n"),
  ["/chunked"] = function(_, sock)
    sock:send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\nX-T: 1\r\n\r\n")
  end,
  ["/until-close"] = function(_, sock) sock:send("HTTP/1.0 200 OK\r\n\r\nall of it") end,
  ["/echo"] = function(req, sock)
    local body = fb.json.encode({method = req.method, body = req.body, target = req.target,
                                 auth = req.headers.authorization or "", host = req.headers.host})
    sock:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
  end,
  ["/slow"] = function(_, sock)
    fb.sleep(300)
    sock:send("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
  end,
  ["/stall"] = function(_, sock) fb.sleep(2000); sock:send("HTTP/1.1 200 OK\r\n\r\n") end,
  ["/stall-body"] = function(_, sock) sock:send("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"); fb.sleep(500) end,
  ["/big"] = reply(string.rep("x", 2000)),
  ["/big-chunked"] = function(_, sock)
    sock:send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" ..
              ("3e8\r\n" .. string.rep("y", 1000) .. "\r\n"):rep(3) .. "0\r\n\r\n")
  end,
  ["/truncated"] = function(_, sock) sock:send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789") end,
  ["/garbage"] = function(_, sock) sock:send("SMTP ready\r\n\r\n") end,
  ["/reset"] = function(_, sock) sock.sock:setoption("linger", {on = true, timeout = 0}) end,
  ["/redirect"] = function(_, sock) sock:send("HTTP/1.1 302 Found\r\nLocation: /plain\r\nContent-Length: 0\r\n\r\n") end,
  ["/head"] = function(_, sock) sock:send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") end,
  ["/dir/rel-redirect"] = function(_, sock)
    sock:send("HTTP/1.1 307 Temporary Redirect\r\nLocation: ../echo\r\nContent-Length: 0\r\n\r\n")
  end,
  ["/echo-redirect"] = function(_, sock)
    sock:send("HTTP/1.1 302 Found\r\nLocation: /echo\r\nContent-Length: 3\r\n\r\nabc")
  end,
  ["/slow-body"] = function(_, sock)  -- 600 ms of body after the head
    sock:send("HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n")
    for _ = 1, 6 do
      fb.sleep(100)
      sock:send(string.rep("w", 50000))
    end
  end,
  ["/slow-big"] = function(_, sock)
    sock:send("HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n")
    for _ = 1, 30 do
      sock:send(string.rep("z", 10000))
      fb.sleep(2)
    end
  end,
}

local server = start_server(routes)
local base = "http://127.0.0.1:" .. server.port

T.test("parse_url", function()
  T.eq(http.parse_url("https://api.groq.com/openai/v1"), {scheme = "https", host = "api.groq.com", port = 443, target = "/openai/v1"})
  T.eq(http.parse_url("http://[::1]:8080?x=1#frag"), {scheme = "http", host = "::1", port = 8080, target = "/?x=1"})
  T.eq(select(2, http.parse_url("ftp://x")), "unsupported URL (need http:// or https://): ftp://x")
  T.eq(select(2, http.parse_url("http://:80/")), "URL has no host: http://:80/")
end)

local function fetch(done, opts, check)
  fb.spawn(T.guard(done, function()
    local res, err = http.request(opts)
    check(res, err)
    done()
  end))
end

T.test("Content-Length body and repeated headers", function(done)
  fetch(done, {url = base .. "/plain"}, function(res, err)
    T.eq(err, nil)
    T.eq(res.status, 200)
    T.eq(res.body, "hello")
    T.eq(res.headers["x-twice"], "a, b")
  end)
end)

T.test("chunked body with trailers", function(done)
  fetch(done, {url = base .. "/chunked"}, function(res) T.eq(res.body, "hello, world") end)
end)

T.test("body until close", function(done)
  fetch(done, {url = base .. "/until-close"}, function(res) T.eq(res.body, "all of it") end)
end)

T.test("POST sends body, headers and Host", function(done)
  fetch(done, {url = base .. "/echo?q=1", method = "post", body = '{"a":1}',
               headers = {Authorization = "Bearer k"}}, function(res)
    local echo = fb.json.decode(res.body)
    T.eq(echo, {method = "POST", body = '{"a":1}', target = "/echo?q=1", auth = "Bearer k",
                host = "127.0.0.1:" .. server.port})
  end)
end)

T.test("HEAD has no body", function(done)
  fetch(done, {url = base .. "/head", method = "HEAD"}, function(res) T.eq(res.body, "") end)
end)

T.test("a total timeout ends a stalled exchange", function(done)
  local started = fb.now()
  fetch(done, {url = base .. "/stall", timeout = 200}, function(res, err)
    T.eq(res, nil)
    T.eq(err, "GET http://127.0.0.1:" .. server.port .. ": timeout after 200 ms")
    local took = fb.now() - started
    if took > 1000 then error("timeout took " .. took .. " ms") end
  end)
end)

T.test("the body cap refuses large bodies, declared or chunked", function(done)
  fb.spawn(T.guard(done, function()
    local _, err = http.request({url = base .. "/big", max_body = 1000})
    T.matches(err, "response body larger than 1000 bytes$")
    _, err = http.request({url = base .. "/big-chunked", max_body = 2500})
    T.matches(err, "response body larger than 2500 bytes$")
    T.eq(http.max_body, 16 * 1024 * 1024)
    done()
  end))
end)

T.test("truncated bodies, garbage and resets are errors", function(done)
  fb.spawn(T.guard(done, function()
    local _, err = http.request({url = base .. "/truncated"})
    T.matches(err, "truncated body %(got 10 of 100 bytes%)$")
    _, err = http.request({url = base .. "/garbage"})
    T.matches(err, "malformed status line: SMTP ready$")
    _, err = http.request({url = base .. "/reset"})
    T.matches(err, "reading status: ")
    done()
  end))
end)

T.test("connection refused names host and port", function(done)
  local probe = assert(cosocket.listen("127.0.0.1", 0))
  local port = probe.port
  probe:close()
  fetch(done, {url = "http://127.0.0.1:" .. port .. "/"}, function(res, err)
    T.eq(res, nil)
    T.eq(err, ("GET http://127.0.0.1:%d: connect 127.0.0.1:%d: connection refused"):format(port, port))
  end)
end)

T.test("stream: the body goes to write() chunk by chunk, whatever its framing", function(done)
  fb.spawn(T.guard(done, function()
    for _, path in ipairs({"/plain", "/chunked", "/until-close", "/slow-big"}) do
      local parts, seen = {}, nil
      local res, err = http.request({url = base .. path, stream = function(r)
        seen = r.status
        return function(chunk) parts[#parts + 1] = chunk; return true end
      end})
      T.eq(err, nil, path)
      T.eq(seen, 200)
      T.eq(res.body, nil, path .. ": no body in memory")
      local body = table.concat(parts)
      if path == "/slow-big" then
        T.eq(#body, 300000)
        T.eq(#parts > 1, true, "more than one chunk")
      else
        T.eq(body, ({["/plain"] = "hello", ["/chunked"] = "hello, world", ["/until-close"] = "all of it"})[path])
      end
    end
    done()
  end))
end)

T.test("stream: a truncated body hands on what came, then fails; write() can stop it", function(done)
  fb.spawn(T.guard(done, function()
    local got = ""
    local res, err, stopped = http.request({url = base .. "/truncated", stream = function()
      return function(chunk) got = got .. chunk; return true end
    end})
    T.eq(res, nil)
    T.eq(got, "0123456789")
    T.matches(err, "truncated body %(got 10 of 100 bytes%)$")
    T.eq(stopped, nil)
    res, err, stopped = http.request({url = base .. "/slow-big", stream = function()
      return function() return nil, "enough" end
    end})
    T.eq(res, nil)
    T.matches(err, ": enough$")
    T.eq(stopped, true)
    -- stream() may decline (an error status): the body is read as usual.
    res = http.request({url = base .. "/nope", stream = function(r) T.eq(r.status, 404); return nil end})
    T.eq(res.status, 404)
    T.eq(res.body, "")
    done()
  end))
end)

T.test("stream: each read waits idle_timeout for data, not a total timeout", function(done)
  fb.spawn(T.guard(done, function()
    local n = 0
    local res, err = http.request({url = base .. "/slow-body", timeout = 300, idle_timeout = 2000, stream = function()
      return function(chunk) n = n + #chunk; return true end
    end})
    T.eq(err, nil)
    T.eq(res.status, 200)
    T.eq(n, 300000)
    res, err = http.request({url = base .. "/stall-body", idle_timeout = 100, stream = function()
      return function() return true end
    end})
    T.eq(res, nil)
    T.matches(err, "no data for 100 ms$")
    done()
  end))
end)

T.test("redirects: relative locations, history, Authorization only to the same origin", function(done)
  local other = start_server(routes)
  fb.spawn(T.guard(done, function()
    local res = assert(http.request({url = base .. "/dir/rel-redirect", redirects = 2, headers = {Authorization = "Bearer k"}}))
    local echo = fb.json.decode(res.body)
    T.eq(echo.target, "/echo")
    T.eq(echo.auth, "Bearer k", "same origin keeps it")
    T.eq(#res.history, 1)
    T.eq(res.history[1].status, 307)
    T.eq(res.url, base .. "/echo")
    -- To another port: another origin.
    local far = "http://127.0.0.1:" .. other.port .. "/echo"
    routes["/to-other"] = function(_, sock)
      sock:send("HTTP/1.1 302 Found\r\nLocation: " .. far .. "\r\nContent-Length: 0\r\n\r\n")
    end
    res = assert(http.request({url = base .. "/to-other", redirects = 2, headers = {authorization = "Bearer k", ["X-Keep"] = "1"}}))
    T.eq({res.status, #res.history}, {200, 1}, res.body)
    echo = fb.json.decode(res.body)
    T.eq(echo.auth, "", "Authorization dropped on the way to another origin")
    T.eq(echo.host, "127.0.0.1:" .. other.port)
    -- A streamed request takes the final body only, never a redirect's.
    local parts = {}
    assert(http.request({url = base .. "/echo-redirect", redirects = 1, stream = function()
      return function(c) parts[#parts + 1] = c; return true end
    end}))
    T.eq(fb.json.decode(table.concat(parts)).target, "/echo")
    local u = http.parse_url("https://h.example/a/b/c?x=1")
    T.eq(http.resolve_location(u, "d"), "https://h.example/a/b/d")
    T.eq(http.resolve_location(u, "/e"), "https://h.example/e")
    T.eq(http.resolve_location(u, "//cdn.example/f"), "https://cdn.example/f")
    T.eq(http.resolve_location(u, "http://x/g"), "http://x/g")
    other:close()
    done()
  end))
end)

T.test("redirects are not followed unless asked", function(done)
  fb.spawn(T.guard(done, function()
    local res, err = http.request({url = base .. "/redirect"})
    T.eq(err, nil)
    T.eq(res.status, 302)
    res = http.request({url = base .. "/redirect", redirects = 1})
    T.eq(res.status, 200)
    T.eq(res.body, "hello")
    done()
  end))
end)

T.test("an explicit proxy gets the absolute URL", function(done)
  local seen
  local proxy = start_server({["/echo"] = function(req, sock)
    seen = req.target
    routes["/echo"](req, sock)
  end})
  fetch(done, {url = "http://example.invalid:81/echo", proxy = "http://127.0.0.1:" .. proxy.port}, function(res, err)
    proxy:close()
    T.eq(err, nil)
    T.eq(seen, "http://example.invalid:81/echo")
    T.eq(fb.json.decode(res.body).host, "example.invalid:81")
  end)
end)

T.test("proxy variables: http_proxy, https_proxy, no_proxy", function()
  local env = {http_proxy = "http://proxy.local:3128", HTTPS_PROXY = "http://secure.local:3129",
               no_proxy = "localhost,.internal.example"}
  http.getenv = function(k) return env[k] end
  local ok, err = pcall(function()
    T.eq(http.proxy_for(http.parse_url("http://api.example.com/x")), "http://proxy.local:3128")
    T.eq(http.proxy_for(http.parse_url("https://api.groq.com/openai/v1")), "http://secure.local:3129")
    T.eq(http.proxy_for(http.parse_url("http://localhost:8080/")), nil)
    T.eq(http.proxy_for(http.parse_url("http://a.internal.example/")), nil)
    T.eq(http.proxy_for(http.parse_url("http://internal.example/")), nil)
    T.eq(http.proxy_for(http.parse_url("http://notinternal.example/")), "http://proxy.local:3128")
    env.no_proxy = "*"
    T.eq(http.proxy_for(http.parse_url("http://api.example.com/x")), nil)
  end)
  http.getenv = os.getenv
  if not ok then error(err, 0) end
end)

T.test("twenty slow requests in flight do not stall the loop", function(done)
  local ticks, finished, started = 0, 0, fb.now()
  local ticker = fb.timer.every(10, function() ticks = ticks + 1 end)
  for _ = 1, 20 do
    fb.spawn(function()
      local res = http.request({url = base .. "/slow"})
      finished = finished + (res and res.body == "slow" and 1 or 0)
      if finished == 20 then
        ticker:stop()
        local took = fb.now() - started
        T.guard(done, function()
          if took > 2000 then error(("20 concurrent 300 ms requests took %d ms"):format(took)) end
          if ticks < 15 then error("the loop ticked only " .. ticks .. " times in " .. took .. " ms") end
          done()
        end)()
      end
    end)
  end
end)

-- TLS: a throw-away CA and a server certificate for 127.0.0.1 / localhost, made with openssl.
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local function sh(cmd) assert(os.execute(cmd .. " >/dev/null 2>&1"), cmd) end
sh(("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=fastbrain-test-ca"):format(dir))
sh(("cd %s && openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost"):format(dir))
local ext = io.open(dir .. "/ext.cnf", "w")
ext:write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
ext:close()
sh(("cd %s && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext.cnf"):format(dir))
local tls_server = start_server(routes, {mode = "server", protocol = "any", key = dir .. "/srv.key",
                                         certificate = dir .. "/srv.pem", options = {"all"}})
local tls_base = "https://127.0.0.1:" .. tls_server.port

T.test("TLS: verification is on by default", function(done)
  fetch(done, {url = tls_base .. "/plain"}, function(res, err)
    T.eq(res, nil)
    T.matches(err, "TLS handshake with 127.0.0.1: .*certificate")
  end)
end)

T.test("TLS: a trusted CA verifies and the request succeeds", function(done)
  fetch(done, {url = tls_base .. "/chunked", tls = {cafile = dir .. "/ca.pem"}}, function(res, err)
    T.eq(err, nil)
    T.eq(res.body, "hello, world")
  end)
end)

T.test("TLS: a streamed body arrives whole, in pieces", function(done)
  fb.spawn(T.guard(done, function()
    local n, pieces = 0, 0
    local res, err = http.request({url = tls_base .. "/slow-big", tls = {cafile = dir .. "/ca.pem"}, stream = function()
      return function(chunk) n, pieces = n + #chunk, pieces + 1; return true end
    end})
    T.eq(err, nil)
    T.eq(res.status, 200)
    T.eq(n, 300000)
    T.eq(pieces > 1, true)
    done()
  end))
end)

T.test("TLS: a certificate for another name is refused", function(done)
  fb.spawn(T.guard(done, function()
    local sock = assert(cosocket.connect("127.0.0.1", tls_server.port, {timeout = 2000}))
    local ok, err = sock:starttls("other.example", {cafile = dir .. "/ca.pem"})
    sock:close()
    T.eq(ok, nil)
    T.eq(err, "TLS: certificate does not match host other.example")
    done()
  end))
end)

T.test("clean up", function()
  server:close()
  tls_server:close()
  os.execute("rm -rf " .. dir)
end)

T.run()
