-- fastbrain.router over a real server on 127.0.0.1 (port 0), talked to over real sockets:
-- routing, params, query, JSON bodies, 404/405, HEAD, errors, 504, runaway 503, SSE,
-- middleware, static files, a route's file (send_file), per-route body limits, listen options,
-- shutdown.
local T = require "tests.lua.testing"
local client = require "tests.http.client"
local fb = require "fastbrain"
local router = require "fastbrain.router"

local app = router.new{timeout = 5000, runaway = 400}
local seen_log = {}
app:use(function(req, res)
  res:on_done(function(status) seen_log[#seen_log + 1] = req.method .. " " .. req.path .. " " .. status end)
end)
app:use(function(req, res)
  if req.path == "/private" then res:error(401, "no entry") end
end)

app:get("/api/health", function(_, res) res:json(200, {status = "ok"}) end)
app:get("/users/:id/posts/:post", function(req, res)
  res:json(200, {id = req.params.id, post = req.params.post})
end)
app:get("/files/*", function(req, res) res:send(200, req.params["*"]) end)
app:get("/query", function(req, res) res:json(200, req.query) end)
app:get("/info", function(req, res)
  res:json(200, {method = req.method, ua = req.headers["user-agent"], addr = req.remote_addr})
end)
app:post("/echo", function(req, res) res:json(201, {got = req:json()}) end)
app:put("/echo", function(req, res) res:json(200, {put = req:json()}) end)
app:delete("/things/:id", function(req, res) res:send(200, "deleted " .. req.params.id) end)
app:get("/boom", function() error("kaboom") end)
app:get("/fail", function() router.fail(409, "already running") end)
app:get("/boom-later", function()
  fb.sleep(10)
  error("kaboom after a yield")
end)
app:get("/fail-later", function()
  fb.sleep(10)
  router.fail(409, "already running")
end)
app:get("/later", function(_, res)
  fb.sleep(30)
  res:json(200, {waited = true})
end)
app:get("/never", function() coroutine.yield() end, {timeout = 80})
local late
app:get("/slowpoke", function(_, res)
  fb.sleep(60)
  late = {res:json(200, {late = true})}
end)
app:get("/spin", function() while true do end end)
-- runaways in coroutines the handler resumes, one made before any request among them
app:get("/spin-wrapped", function() coroutine.wrap(function() while true do end end)() end)
local spinner = coroutine.create(function() while true do end end)
app:get("/spin-resumed", function(_, res)
  coroutine.resume(spinner)
  res:json(200, {survived = true})
end)
app:get("/spin-caught", function()
  while true do pcall(function() while true do end end) end
end)
app:get("/spin-later", function()
  fb.sleep(10)
  while true do end
end)
app:post("/small", function(_, res) res:send(200, "ok") end, {max_body = 10})
app:get("/headers", function(_, res) res:send(200, "x", {["X-Custom"] = "yes", ["Content-Type"] = "text/x-test"}) end)

app:get("/chunks", function(_, res)
  local s = res:stream(200, {["Content-Type"] = "text/plain"})
  for i = 1, 3 do
    s:write("part" .. i .. ";")
    fb.sleep(5)
  end
  T.raises(function() s:send("x", "y") end, "not an event stream")
  s:close()
end)

local sse_closed = 0
app:get("/events", function(req, res)
  local stream = res:sse()
  stream:on_close(function() sse_closed = sse_closed + 1 end)
  stream:send("hello", {last = req.last_event_id}, 1)
  stream:send(nil, "line1\nline2")
  for i = 1, 3 do
    fb.sleep(10)
    if not stream:send("tick", tostring(i), i + 1) then return end
  end
end)

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir .. "/web && printf '<h1>hi</h1>' > " .. dir .. "/web/index.html"))
app:static("/", dir .. "/web")

-- A route answering with a file: 3 MiB (many chunks, more than a client's write queue), or
-- one that is not there (then the route still answers).
local big = dir .. "/big.bin"
do
  local f = assert(io.open(big, "wb"))
  for i = 1, 3 * 1024 do f:write(string.rep(string.char(i % 251), 1024)) end
  f:close()
end
app:get("/download/:name", function(req, res)
  local ok, err = res:send_file(200, dir .. "/" .. req.params.name, {["Content-Type"] = "application/octet-stream",
                                                                    ["Content-Disposition"] = "attachment"})
  if not ok then res:json(404, {error = err}) end
end)

local port = assert(app:listen{host = "127.0.0.1", port = 0})

local function get(path, opts) return client.request(port, "GET", path, opts) end
local function json(res) return fb.json.decode(res.body) end

T.test("listen on port 0 reports the chosen port", function()
  assert(math.type(port) == "integer" and port > 0 and port == app.port)
end)

T.test("params, trailing * and query decoding", function()
  T.eq(json(get("/users/42/posts/hello%20world")), {id = "42", post = "hello world"})
  T.eq(get("/files/a/b%2Fc/d.txt").body, "a/b/c/d.txt")
  T.eq(json(get("/query?a=1&b=x+y&c=%C3%A9&empty=")), {a = "1", b = "x y", c = "é", empty = ""})
  T.eq(json(get("/query")), fb.json.decode("{}"))
end)

T.test("pattern edges: empty params, extra segments, bad escapes, HEAD and 405 on patterns", function()
  T.eq(get("/users/42/posts/").status, 404)
  T.eq(get("/users//posts/1").status, 404)
  T.eq(get("/users/42/posts/1/more").status, 404)
  T.eq(get("/users/42/postsx/1").status, 404)
  T.eq(get("/files/").body, "")
  T.eq(json(get("/users/a%zz/posts/%41%")), {id = "a%zz", post = "A%"})
  local r = client.request(port, "HEAD", "/users/1/posts/2")
  T.eq(r.status, 200)
  T.eq(r.body, "")
  r = client.request(port, "POST", "/users/1/posts/2", {body = "{}"})
  T.eq(r.status, 405)
  T.eq(r.headers["allow"], "GET, HEAD")
end)

T.test("request fields", function()
  local r = json(get("/info", {headers = {["User-Agent"] = "tester/1"}}))
  T.eq(r, {method = "GET", ua = "tester/1", addr = "127.0.0.1"})
end)

T.test("404, 405 with Allow, HEAD for GET", function()
  local r = get("/nope")
  T.eq(r.status, 404)
  T.eq(json(r), {error = "not found"})
  r = client.request(port, "POST", "/api/health", {body = "{}"})
  T.eq(r.status, 405)
  T.eq(r.headers["allow"], "GET, HEAD")
  T.eq(json(r), {error = "method not allowed"})
  r = client.request(port, "DELETE", "/echo", {headers = {["Content-Type"] = "application/json"}})
  T.eq(r.status, 405)
  T.eq(r.headers["allow"], "POST, PUT")
  r = client.request(port, "HEAD", "/api/health")
  T.eq(r.status, 200)
  T.eq(r.body, "")
  T.eq(r.headers["content-length"], #'{"status":"ok"}' .. "")
end)

T.test("JSON bodies and bad JSON", function()
  local r = client.request(port, "POST", "/echo", {body = '{"a":[1,2]}'})
  T.eq(r.status, 201)
  T.eq(json(r), {got = {a = {1, 2}}})
  r = client.request(port, "PUT", "/echo", {body = '{"b":true}'})
  T.eq(json(r), {put = {b = true}})
  r = client.request(port, "POST", "/echo", {body = '{"a":'})
  T.eq(r.status, 400)
  T.matches(json(r).error, "^bad JSON in request body")
  r = client.request(port, "DELETE", "/things/7", {headers = {["Content-Type"] = "application/json"}})
  T.eq(r.body, "deleted 7")
end)

T.test("handler error is a 500 without the traceback, then the next request is fine", function()
  local r = get("/boom")
  T.eq(r.status, 500)
  T.eq(r.body, '{"error":"internal error"}')
  T.eq(get("/api/health").status, 200)
  r = get("/fail")
  T.eq(r.status, 409)
  T.eq(json(r), {error = "already running"})
end)

T.test("an error after a yield is a 500 at once, not a timeout; fail() after a yield keeps its status", function()
  local t0 = fb.now()
  local r = get("/boom-later")
  T.eq(r.status, 500)
  T.eq(r.body, '{"error":"internal error"}')
  T.eq(fb.now() - t0 < 2000, true, "answered before the route's 5 s timeout")
  r = get("/fail-later")
  T.eq(r.status, 409)
  T.eq(json(r), {error = "already running"})
  T.eq(get("/api/health").status, 200)
end)

T.test("a handler may yield and answer later", function()
  local t0 = fb.now()
  local r = get("/later")
  T.eq(json(r), {waited = true})
  assert(fb.now() - t0 >= 25, "answered before its sleep")
end)

T.test("handlers run in pooled coroutines; one that yielded leaves the pool", function()
  local threads = {}
  app:get("/which", function(req, res)
    threads[#threads + 1] = coroutine.running()
    if req.query.wait then fb.sleep(5) end
    res:send(200, "ok")
  end)
  for _ = 1, 3 do T.eq(get("/which").status, 200) end
  T.eq(threads[2], threads[1])
  T.eq(threads[3], threads[1])
  T.eq(get("/which?wait=1").status, 200)
  T.eq(threads[4], threads[1])
  T.eq(get("/which").status, 200)
  assert(threads[5] ~= threads[4], "a coroutine that yielded came back to the pool")
  assert(#app.idle <= 64, "pool over its cap")
end)

T.test("a handler that never answers gets 504 after the route timeout", function()
  local t0 = fb.now()
  local r = get("/never")
  T.eq(r.status, 504)
  T.eq(json(r), {error = "handler timed out"})
  local took = fb.now() - t0
  assert(took >= 70 and took < 2000, "504 after " .. took .. " ms")
end)

T.test("a client that leaves early: the late answer is dropped quietly, the log says 499", function()
  local c = client.connect(port)
  c:send("GET /slowpoke HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
  fb.sleep(15)
  c:close()
  local deadline = fb.now() + 1000
  while not late and fb.now() < deadline do fb.sleep(5) end
  T.eq(late, {nil, "closed"})
  local found = false
  for _, line in ipairs(seen_log) do
    if line == "GET /slowpoke 499" then found = true end
  end
  assert(found, "request log missed GET /slowpoke 499")
end)

T.test("a runaway handler is stopped with 503 and the server keeps serving", function()
  local r = get("/spin")
  T.eq(r.status, 503)
  T.eq(json(r), {error = "handler took too long"})
  T.eq(get("/api/health").status, 200)
end)

T.test("coroutine.resume and coroutine.wrap, replaced to keep the guard's chain, behave as before", function()
  local co = coroutine.create(function(a, b)
    local c = coroutine.yield(a + b, "x")
    error("oops " .. c)
  end)
  T.eq({coroutine.resume(co, 1, 2)}, {true, 3, "x"})
  local ok, err = coroutine.resume(co, "c")
  T.eq(ok, false)
  T.matches(err, "oops c$")
  T.eq({coroutine.resume(co)}, {false, "cannot resume dead coroutine"})
  T.eq({coroutine.resume(coroutine.running())}, {false, "cannot resume non-suspended coroutine"})
  T.raises(function() coroutine.resume(42) end, "thread expected, got number")
  local gen = coroutine.wrap(function(n)
    for i = 1, n do coroutine.yield(i) end
    return "end"
  end)
  T.eq({gen(2), gen(), gen()}, {1, 2, "end"})
  T.raises(function() gen() end, "cannot resume dead coroutine")
  local bad = coroutine.wrap(function() error("inner") end)
  local _, werr = pcall(bad)
  T.matches(werr, "test_router.lua:%d+: inner$")
  local closed = false
  local tbc = coroutine.wrap(function()
    local _ <close> = setmetatable({}, {__close = function() closed = true end})
    error("with a pending close")
  end)
  pcall(tbc)
  T.eq(closed, true)
  T.raises(function() coroutine.wrap(1) end, "function expected")
end)

T.test("the runaway guard stops coroutines the handler resumes, after a yield too", function()
  for _, path in ipairs{"/spin-wrapped", "/spin-resumed", "/spin-caught", "/spin-later"} do
    local started = fb.now()
    local r = get(path)
    T.eq({path, r.status}, {path, 503})
    T.eq(json(r), {error = "handler took too long"})
    assert(fb.now() - started < 2000, path .. " took " .. (fb.now() - started) .. " ms")
    T.eq(get("/api/health").status, 200)
  end
  T.eq(coroutine.status(spinner), "dead")
end)

T.test("middleware answers and logs", function()
  T.eq(get("/private").status, 401)
  local found = false
  for _, line in ipairs(seen_log) do
    if line == "GET /private 401" then found = true end
  end
  assert(found, "request log missed GET /private 401")
end)

T.test("response headers", function()
  local r = get("/headers")
  T.eq(r.headers["x-custom"], "yes")
  T.eq(r.headers["content-type"], "text/x-test")
  T.eq(r.headers["x-content-type-options"], "nosniff")
end)

T.test("per-route body limit is 413", function()
  local r = client.request(port, "POST", "/small", {body = "0123456789abc"})
  T.eq(r.status, 413)
  r = client.request(port, "POST", "/small", {body = "0123"})
  T.eq(r.status, 200)
end)

T.test("static files are served before routes", function()
  local r = get("/")
  T.eq(r.status, 200)
  T.eq(r.body, "<h1>hi</h1>")
  T.matches(r.headers["content-type"], "^text/html")
  T.eq(get("/api/health").status, 200)  -- not a file: falls through to the route
  T.eq(get("/../etc/passwd").status, 404)
end)

T.test("SSE: framing, Last-Event-ID, ticks, on_close when the client leaves", function()
  local c = client.connect(port)
  c:send("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: 9\r\n\r\n")
  local buf = c:read_until("data: 2\n\n")
  T.matches(buf, "Content%-Type: text/event%-stream")
  T.matches(buf, 'id: 1\nevent: hello\ndata: {"last":"9"}\n\n', "first event")
  T.matches(buf, "data: line1\ndata: line2\n\n", "multi-line data")
  T.matches(buf, "id: 3\nevent: tick\ndata: 2\n\n", "tick")
  local before = sse_closed
  c:close()
  local deadline = fb.now() + 1000
  while sse_closed == before and fb.now() < deadline do fb.sleep(5) end
  T.eq(sse_closed, before + 1)
end)

T.test("a streamed response arrives chunked and whole", function()
  local r = get("/chunks")
  T.eq(r.status, 200)
  T.eq(r.headers["transfer-encoding"], "chunked")
  T.eq(r.body, "part1;part2;part3;")
end)

T.test("global limits from listen{limits=}", function()
  local other = router.new()
  other:post("/x", function(_, res) res:send(200, "ok") end)
  local p = assert(other:listen{port = 0, limits = {max_body = 4, max_header_fields = 5}})
  T.eq(client.request(p, "POST", "/x", {body = "12345"}).status, 413)
  T.eq(client.request(p, "POST", "/x", {body = "1234"}).status, 200)
  local many = {}
  for i = 1, 6 do many["X-H" .. i] = "v" end
  T.eq(client.request(p, "GET", "/x", {headers = many}).status, 431)
  other:close(0)
end)

T.test("an SSE client that does not read is dropped at the queue cap; its stream closes", function()
  local other = router.new()
  local result, closes = nil, 0
  other:get("/flood", function(_, res)
    local s = res:sse()
    s:on_close(function() closes = closes + 1 end)
    local event = string.rep("x", 16 * 1024)
    for i = 1, 4096 do  -- 64 MiB at most: far past the socket buffers and the cap
      local ok, err = s:send("fill", event, i)
      if not ok then
        result = {ok, err}
        return
      end
      if i % 16 == 0 then fb.sleep(1) end
    end
    result = {"never dropped"}
  end)
  local p = assert(other:listen{port = 0, limits = {max_write_queue = 64 * 1024}})
  local c = client.connect(p)
  c:send("GET /flood HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  -- and never read
  local deadline = fb.now() + 10000
  while not result and fb.now() < deadline do fb.sleep(5) end
  T.eq(result, {nil, "client too slow"})
  T.eq(closes, 1)
  c:close()
  other:close(0)
end)

T.test("past max_sse_streams, res:sse() answers 503 and returns nil, why; the log says 503", function()
  local other = router.new()
  local results, logged = {}, {}
  other:use(function(_, res) res:on_done(function(status) logged[#logged + 1] = status end) end)
  other:get("/events", function(_, res)
    local s, err = res:sse()
    results[#results + 1] = s and "open" or err
  end)
  local p = assert(other:listen{port = 0, limits = {max_sse_streams = 1}})
  local first = client.connect(p)
  first:send("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
  first:read_until("text/event-stream")
  local r = client.request(p, "GET", "/events")
  T.eq(r.status, 503)
  T.eq(fb.json.decode(r.body), {error = "too many event streams open (max 1); close one and retry"})
  T.eq(results, {"open", "too many event streams"})
  T.eq(logged, {200, 503})
  first:close()
  other:close(0)
end)

T.test("IPv6: listen on ::1", function()
  local other = router.new()
  other:get("/v6", function(req, res) res:json(200, {addr = req.remote_addr}) end)
  local p = assert(other:listen{host = "::1", port = 0})
  local c = client.connect(p, "::1")
  c:send("GET /v6 HTTP/1.1\r\nHost: [::1]\r\n\r\n")
  local r = c:read()
  T.eq(r.status, 200)
  T.eq(fb.json.decode(r.body), {addr = "::1"})
  c:close()
  other:close(0)
end)

T.test("send_file: a route's file in chunks, its length, HEAD without the body, a missing one", function()
  local r = client.request(port, "GET", "/download/big.bin", {timeout = 10000})
  T.eq({r.status, r.headers["content-length"], r.headers["content-disposition"]}, {200, tostring(3 * 1024 * 1024), "attachment"})
  local f = assert(io.open(big, "rb"))
  local want = f:read("a")
  f:close()
  T.eq(#r.body, #want)
  assert(r.body == want, "the body is the file")
  r = client.request(port, "HEAD", "/download/big.bin")
  T.eq({r.status, r.headers["content-length"], r.body}, {200, tostring(3 * 1024 * 1024), ""})
  r = client.request(port, "GET", "/download/nothing-here")
  T.eq({r.status, fb.json.decode(r.body).error}, {404, "not found"})
  r = client.request(port, "GET", "/download/web")  -- a directory is not a file
  T.eq(r.status, 404)
  T.eq(client.request(port, "GET", "/api/health").status, 200)
end)

T.test("HTTP/1.0: answered, then the connection closes", function()
  local c = client.connect(port)
  c:send("GET /api/health HTTP/1.0\r\n\r\n")
  local r = c:read()
  T.eq(r.status, 200)
  T.eq(fb.json.decode(r.body), {status = "ok"})
  T.eq(r.headers["connection"], "close")
  local deadline = fb.now() + 2000
  while c:fill(deadline) do end  -- raises if the server keeps it open past the deadline
  T.eq(c.closed, true)
  c:close()
end)

T.test("a request handle goes stale once its request is answered, also after its slot is reused", function()
  local http = require "fastbrain.http"
  local kept = {}
  local srv = assert(http.listen{port = 0, on_request = function(rq)
    kept[#kept + 1] = rq
    T.eq(http.alive(rq), true)
    http.respond(rq, 200, "ok", "text/plain")
  end})
  T.eq(client.request(srv:port(), "GET", "/").body, "ok")
  T.raises(function() http.respond(kept[1], 200, "again") end, "request is already answered")
  T.eq(http.alive(kept[1]), false)
  T.eq(client.request(srv:port(), "GET", "/").body, "ok")
  assert(kept[2] ~= kept[1])
  T.raises(function() http.respond(kept[1], 200, "again") end, "request is already")
  T.raises(function() http.body(kept[2]) end, "request is already answered")
  T.raises(function() http.respond(-1, 200, "x") end, "request is already")
  T.raises(function() http.respond("x", 200, "x") end, "number expected")
  srv:close(0)
end)

T.test("keep-alive: several requests on one connection", function()
  local c = client.connect(port)
  for i = 1, 3 do
    c:send("GET /users/" .. i .. "/posts/p HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    T.eq(fb.json.decode(c:read().body).id, tostring(i))
  end
  c:close()
end)

T.test("listen validates its options and refuses a public host without a token", function()
  local other = router.new()
  other:get("/", function(_, res) res:send(200, "x") end)
  T.raises(function() other:listen{hots = "x"} end, "unknown option 'hots'")
  local ok, err = other:listen{host = "0.0.0.0", port = 0}
  T.eq(ok, nil)
  T.matches(err, "without a token")
  T.raises(function() other:listen{port = 0, limits = {max_bdy = 1}} end, "unknown http limit 'max_bdy'")
  T.raises(function() app:get("no-slash", function() end) end, "must start with '/'")
  T.raises(function() router.new{timout = 1} end, "unknown option 'timout'")
end)

T.test("a token guards every non-static request", function()
  local other = router.new()
  other:get("/x", function(_, res) res:send(200, "secret") end)
  local p = assert(other:listen{port = 0, token = "tok"})
  T.eq(client.request(p, "GET", "/x").status, 401)
  T.eq(client.request(p, "GET", "/x", {headers = {Authorization = "Bearer tok"}}).body, "secret")
  other:close(0)
end)

T.test("close ends SSE streams with a final event and stops accepting", function(done)
  local other = router.new()
  local closed = false
  other:get("/ev", function(_, res)
    local s = res:sse()
    s:on_close(function() closed = true end)
    s:send("hi", "1")
  end)
  local p = assert(other:listen{port = 0})
  fb.spawn(T.guard(done, function()
    local c = client.connect(p)
    c:send("GET /ev HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    c:read_until("event: hi")
    local finished = false
    other:close(500, function() finished = true end)
    local buf = c:read_until("event: close\ndata: shutdown\n\n")
    T.matches(buf, "event: close")
    assert(c:closed_within(1000), "stream not closed")
    c:close()
    local deadline = fb.now() + 1000
    while not finished and fb.now() < deadline do fb.sleep(5) end
    assert(finished, "close callback never ran")
    assert(closed, "stream on_close never ran")
    done()
  end))
end)

T.test("teardown", function()
  app:close(0)
  os.execute("rm -rf " .. dir)
end)

T.run()
