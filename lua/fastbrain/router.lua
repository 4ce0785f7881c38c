-- fastbrain.router: routes over the engine's HTTP server (fastbrain.http). Patterns with
-- :param and a trailing *, HEAD for GET, 404/405, each handler in its own coroutine with a
-- per-route timeout (504) and a runaway guard (503), middleware, static mounts, SSE streams.
-- It does not parse HTTP or enforce limits: the engine does, before a request gets here.
local http = require "fastbrain.http"
local fb = require "fastbrain"
local json = require "fastbrain.json"
local encode = json.encode
-- the engine's calls on a request handle (an integer; see engine/l_http.c)
local respond, on_close, alive, header = http.respond, http.on_close, http.alive, http.header

local M = {}

local DEFAULTS = {
  timeout = 30000,   -- ms a handler may take to answer before 504
  runaway = 1000,    -- ms a handler may keep the loop busy without yielding before 503
}

-- An error a handler may raise on purpose to answer with a status: M.fail(400, "msg").
local Fail = {}
Fail.__index = Fail
Fail.__tostring = function(e) return ("%d %s"):format(e.status, e.message) end

function M.fail(status, message)
  error(setmetatable({status = status, message = message}, Fail), 2)
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "a=1&b=x+y&c" -> {a = "1", b = "x y", c = ""}; a repeated key keeps its last value.
function M.parse_query(qs)
  local q = {}
  for pair in qs:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    q[unescape((k:gsub("+", " ")))] = unescape((v:gsub("+", " ")))
  end
  return q
end

-- Check "/api/status/:skill/*": params and a trailing * (matched in C by http.routes()).
-- A pattern without params is also found by a table lookup, before any matching.
local function compile(pattern)
  if type(pattern) ~= "string" or pattern:sub(1, 1) ~= "/" then
    error("route pattern must start with '/': " .. tostring(pattern), 3)
  end
  local r = {pattern = pattern, names = {}}
  for seg in pattern:gmatch("[^/]+") do
    if r.names[#r.names] == "*" then error("'*' must end the pattern: " .. pattern, 3) end
    if seg == "*" then
      r.names[#r.names + 1] = "*"
    elseif seg:sub(1, 1) == ":" then
      if #seg == 1 then error("a :param needs a name: " .. pattern, 3) end
      r.names[#r.names + 1] = seg:sub(2)
    end
  end
  r.static = #r.names == 0
  return r
end

-- The request as handlers see it: plain fields, plus lazily built headers/body/query.
local lazy = {
  headers = function(req) return http.headers(req._rq) end,
  body = function(req) return http.body(req._rq) end,
  query = function(req) return M.parse_query(req.query_string) end,
  remote_addr = function(req) return http.remote_addr(req._rq) end,
  last_event_id = function(req) return header(req._rq, "last-event-id") end,
}
local Req = {}
Req.__index = function(req, k)
  local f = lazy[k]
  if f then
    local v = f(req)
    rawset(req, k, v)
    return v
  end
  return Req[k]
end

-- req:json(): the body decoded, or a 400 with a clear message.
function Req:json()
  local ok, v, err = pcall(json.decode, self.body)
  if not ok then err = v end
  if err ~= nil then
    M.fail(400, "bad JSON in request body: " .. tostring(err):gsub("^.-:%d+: ", ""):gsub("^json: ", ""))
  end
  return v
end

function Req:header(name) return header(self._rq, name:lower()) end

local Res = {}
Res.__index = Res

-- The request is over: answered with status, or given up (gone = "timed out" / "closed"),
-- after which the handler's late answer is dropped quietly.
local function finished(res, status, gone)
  if res.done then return end
  if gone then res.gone = gone end
  res.done = true
  res.status = status
  if res.timer then res.timer:stop() end
  if res.done_hooks then
    for _, fn in ipairs(res.done_hooks) do fn(res.status) end
  end
end

function Res:send(status, body, headers)
  if self.gone then return nil, self.gone end
  if self.done then error("response already sent", 2) end
  headers = headers or {}
  if not (headers["Content-Type"] or headers["content-type"]) then
    headers["Content-Type"] = "text/plain; charset=utf-8"
  end
  respond(self._rq, status, body or "", headers)
  finished(self, status)
end

-- res:send_file(status, path [, headers]): the file as the body, read as the client takes it
-- (no copy in memory: a download of any size). nil, "not found" when path is not a readable
-- regular file; the response is then still unsent.
function Res:send_file(status, path, headers)
  if self.gone then return nil, self.gone end
  if self.done then error("response already sent", 2) end
  local ok, err = http.respond_file(self._rq, status, path, headers or {})
  if err == "not found" then return nil, err end
  finished(self, status)
  return ok, err
end

-- res:json(status, value [, headers])
function Res:json(status, value, headers)
  if self.gone then return nil, self.gone end
  if self.done then error("response already sent", 2) end
  local h = "application/json"  -- the engine takes a lone Content-Type as a string
  if headers then
    h = {["Content-Type"] = "application/json"}
    for k, v in pairs(headers) do h[k] = v end
  end
  respond(self._rq, status, encode(value), h)
  finished(self, status)
end

-- Run fn() once if the client goes away (or the server ends the request) before the end.
function Res:on_abort(fn)
  if not self.aborters then
    local list = {}
    self.aborters = list
    on_close(self._rq, function()
      for _, f in ipairs(list) do
        local ok, err = pcall(f)
        if not ok then fb.log.error("on_close: %s", tostring(err)) end
      end
    end)
  end
  self.aborters[#self.aborters + 1] = fn
end

function Res:error(status, message)
  self:json(status, {error = message})
end

local Stream = {}
Stream.__index = Stream

-- Begin a streamed response with begin(rq): a stream object, or nil and why when the client
-- is already gone. A stream counts as answered for the request log; its on_close functions
-- run once when the client or the server ends it.
local function open_stream(res, status, begin)
  if res.gone then return nil, res.gone end
  if res.done then error("response already sent", 3) end
  local rq = res._rq
  local s = setmetatable({_rq = rq, closed = false, closers = {}}, Stream)
  res:on_abort(function() s:_ended() end)
  local ok, err = begin(rq)
  if not ok then  -- the engine answered 503 past its cap of event streams
    if err == "too many event streams" then finished(res, 503, err) else finished(res, 499, "closed") end
    return nil, err
  end
  finished(res, status)
  return s
end

-- res:sse([headers]) -> an event stream: send(event, data, id), on_close(fn), close().
function Res:sse(headers)
  return open_stream(self, 200, function(rq) return http.sse(rq, headers) end)
end

-- res:stream(status [, headers]) -> a chunked stream (close-delimited for HTTP/1.0):
-- write(data), on_close(fn), close().
function Res:stream(status, headers)
  return open_stream(self, status, function(rq) return http.stream(rq, status, headers) end)
end

function Stream:_ended()
  if self.closed then return end
  self.closed = true
  for _, fn in ipairs(self.closers) do
    local ok, err = pcall(fn)
    if not ok then fb.log.error("sse on_close: %s", tostring(err)) end
  end
end

-- send(event, data, id): data may be a table (sent as JSON). true, or nil and why.
function Stream:send(event, data, id)
  if self.closed then return nil, "closed" end
  if type(data) == "table" then data = encode(data) end
  local ok, err = http.event(self._rq, event, tostring(data), id and tostring(id))
  if not ok then self:_ended() end
  return ok, err
end

-- write(data): one chunk of a res:stream() body. true, or nil and why.
function Stream:write(data)
  if self.closed then return nil, "closed" end
  local ok, err = http.write(self._rq, data)
  if not ok then self:_ended() end
  return ok, err
end

function Stream:on_close(fn)
  self.closers[#self.closers + 1] = fn
end

function Stream:close()
  if self.closed then return end
  http.finish(self._rq)
  self:_ended()
end

local App = {}
App.__index = App

function M.new(opts)
  opts = opts or {}
  for k in pairs(opts) do
    if DEFAULTS[k] == nil then error("router.new: unknown option '" .. tostring(k) .. "'", 2) end
  end
  return setmetatable({
    routes = {},         -- in registration order
    all = http.routes(), -- every pattern, in the order of routes
    exact = {},          -- METHOD -> path -> route, for patterns without params
    by_method = {},      -- METHOD -> routes in registration order
    matchers = {},       -- METHOD -> http.routes() of by_method[METHOD]
    idle = {},           -- parked handler coroutines
    waiting = setmetatable({}, {__mode = "k"}),  -- coroutine -> {req, res} once it yielded
    middleware = {},
    statics = {},
    timeout = opts.timeout or DEFAULTS.timeout,
    runaway = opts.runaway or DEFAULTS.runaway,
    body_limits = false,  -- true once a route sets max_body
  }, App)
end

local ROUTE_OPTS = {timeout = true, max_body = true}

function App:route(method, pattern, handler, opts)
  if type(handler) ~= "function" then error("route handler must be a function", 3) end
  opts = opts or {}
  for k in pairs(opts) do
    if not ROUTE_OPTS[k] then error("route: unknown option '" .. tostring(k) .. "'", 3) end
  end
  local r = compile(pattern)
  r.method, r.handler = method, handler
  r.timeout, r.max_body = opts.timeout, opts.max_body
  if r.max_body then self.body_limits = true end
  self.routes[#self.routes + 1] = r
  self.all:add(pattern)
  local same = self.by_method[method] or {}
  self.by_method[method] = same
  same[#same + 1] = r
  local m = self.matchers[method] or http.routes()
  self.matchers[method] = m
  m:add(pattern)
  if r.static then
    local exact = self.exact[method] or {}
    self.exact[method] = exact
    exact[pattern] = exact[pattern] or r
  end
  return self
end

for _, m in ipairs({"get", "post", "put", "delete", "patch"}) do
  local METHOD = m:upper()
  App[m] = function(self, pattern, handler, opts) return self:route(METHOD, pattern, handler, opts) end
end

-- app:use(fn): fn(req, res) runs before the route handler (in its coroutine); it may answer,
-- which ends the request there, or add res:on_done(fn(status)) hooks.
function App:use(fn)
  if type(fn) ~= "function" then error("use: function expected", 2) end
  self.middleware[#self.middleware + 1] = fn
  return self
end

function Res:on_done(fn)
  self.done_hooks = self.done_hooks or {}
  self.done_hooks[#self.done_hooks + 1] = fn
end

-- app:static(prefix, dir): files under dir for GET/HEAD under prefix, tried before the routes.
function App:static(prefix, dir)
  if type(prefix) ~= "string" or type(dir) ~= "string" then
    error("static(prefix, dir): strings expected", 2)
  end
  self.statics[#self.statics + 1] = {prefix, dir}
  if self.server then assert(self.server:static(prefix, dir)) end
  return self
end

-- The route for method+path: route and params, or nil and the allowed methods (for 405).
local NONE = {}

function App:find(method, path)
  local r = (self.exact[method] or NONE)[path]
  if not r and method == "HEAD" then r = (self.exact.GET or NONE)[path] end
  if r then return r, {} end
  local m = self.matchers[method]
  local i, params
  if m then i, params = m:match(path) end
  if i then return self.by_method[method][i], params end
  if method == "HEAD" and self.matchers.GET then
    i, params = self.matchers.GET:match(path)
    if i then return self.by_method.GET[i], params end
  end
  local allowed
  i = self.all:match(path)
  while i do
    local route = self.routes[i]
    allowed = allowed or {}
    allowed[route.method] = true
    if route.method == "GET" then allowed.HEAD = true end
    i = self.all:match(path, i + 1)
  end
  if not allowed then return nil end
  local list = {}
  for name in pairs(allowed) do list[#list + 1] = name end
  table.sort(list)
  return nil, table.concat(list, ", ")
end

local function is_fail(err) return getmetatable(err) == Fail end

-- Runs in the request's coroutine.
local function serve(app, route, req, res)
  local mws = app.middleware
  for i = 1, #mws do
    mws[i](req, res)
    if res.done then return end
  end
  if not route then
    if req.allow then
      res:json(405, {error = "method not allowed"}, {Allow = req.allow})
    else
      res:error(404, "not found")
    end
    return
  end
  route.handler(req, res)
end

local function is_runaway(err)
  return type(err) == "string" and err:find("runaway handler", 1, true) ~= nil
end

local function on_error(res, req, err)
  local status, message = 500, "internal error"
  if is_fail(err) then
    status, message = err.status, err.message
  else
    if is_runaway(err) then status, message = 503, "handler took too long" end
    fb.log.error("%s %s: %s", req.method, req.path, tostring(err))
  end
  if res.done then
    if is_fail(err) then fb.log.error("%s %s: fail(%d) after answering", req.method, req.path, status) end
  elseif alive(res._rq) then
    res:error(status, message)
  else
    finished(res, 499, "closed")
  end
end

-- Handlers run in pooled coroutines: a worker serves one request, then parks (yields PARKED)
-- and goes back to the pool if it finished within the dispatch that started it. One that
-- yielded on the way is driven by whoever resumes it and is dropped when it ends.
local PARKED, MAX_IDLE = {}, 64
local resume = coroutine.resume  -- fastbrain.http's, which keeps the runaway guard's chain

-- A handler's error, with the traceback where it was raised; fail() objects and runaway stops
-- stay as they are (a runaway keeps raising until it leaves the coroutine: the guard answers it).
local function traced(err)
  if is_fail(err) or is_runaway(err) then return err end
  return debug.traceback(tostring(err), 2)
end

function App:_worker()
  -- Errors are answered inside the coroutine, so one raised after a yield (when a timer or a
  -- socket resumes the handler, not _dispatch) still gets its 500.
  local co = coroutine.create(function(app, route, req, res)
    while true do
      local ok, err = xpcall(serve, traced, app, route, req, res)
      if not ok then
        if is_runaway(err) then error(err, 0) end
        on_error(res, req, err)
      end
      app, route, req, res = coroutine.yield(PARKED)
    end
  end)
  -- A runaway stopped after a yield was resumed by someone else (a timer, a socket): answer
  -- its request here. One stopped in _dispatch's own resume is answered there.
  local waiting = self.waiting
  fb.guard(co, self.runaway, function(err)
    local w = waiting[co]
    if w then
      waiting[co] = nil
      on_error(w.res, w.req, err)
    end
  end)
  return co
end

-- Called by the engine for every request that no static mount answered.
function App:_dispatch(rq, method, path, query_string)
  local route, params_or_allow = self:find(method, path)
  local req = setmetatable({_rq = rq, method = method, path = path, query_string = query_string,
                            params = route and params_or_allow or {}}, Req)
  if not route then req.allow = params_or_allow end
  -- every field finished() reads or sets is here (status = nil sizes the table for it): no
  -- rehash and no lookup through the metatable per request
  local res = setmetatable({_rq = rq, done = false, gone = false, timer = false,
                            done_hooks = false, status = nil}, Res)
  local idle = self.idle
  local co = idle[#idle]
  if co then idle[#idle] = nil else co = self:_worker() end
  local ok, err = resume(co, self, route, req, res)
  if not ok then
    on_error(res, req, err)
    return
  end
  if err == PARKED and #idle < MAX_IDLE then idle[#idle + 1] = co end
  if res.done then return end
  self.waiting[co] = {req = req, res = res}
  -- Not answered yet: the handler yielded (a timer or a socket resumes it) or kept res for a
  -- callback. Give up after the route's timeout; stop waiting if the client leaves.
  local timeout = route and route.timeout or self.timeout
  res.timer = fb.timer.after(timeout, function()
    if res.done then return end
    fb.log.warn("%s %s: no answer after %d ms", method, path, timeout)
    if alive(rq) then res:error(504, "handler timed out") end
    finished(res, 504, "timed out")
    res.gone = "timed out"
  end)
  res:on_abort(function() finished(res, 499, "closed") end)
end

-- app:listen{host=, port=, token=, allowed_hosts=, limits=} -> port, or nil and why.
function App:listen(opts)
  opts = opts or {}
  local known = {host = true, port = true, token = true, allowed_hosts = true, limits = true}
  for k in pairs(opts) do
    if not known[k] then error("listen: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if self.server then error("listen: already listening", 2) end
  local app = self
  local srv, err = http.listen{
    host = opts.host, port = opts.port, token = opts.token,
    allowed_hosts = opts.allowed_hosts, limits = opts.limits,
    on_request = function(rq, method, path, qs) return app:_dispatch(rq, method, path, qs) end,
    on_headers = self.body_limits and function(method, path)
      local r = app:find(method, path)
      return r and r.max_body
    end or nil,
  }
  if not srv then return nil, err end
  for _, s in ipairs(self.statics) do
    local ok, serr = srv:static(s[1], s[2])
    if not ok then
      srv:close(0)
      return nil, serr
    end
  end
  self.server = srv
  self.port = srv:port()
  self.host = opts.host or "127.0.0.1"
  return self.port
end

-- app:close([grace_ms], [fn]): stop accepting, finish in-flight requests, end SSE streams.
function App:close(grace, fn)
  if not self.server then return end
  local srv = self.server
  self.server = nil
  srv:close(grace, fn)
end

-- A request log middleware: "GET /path 200 1.2 ms" at info level once answered.
function M.logger()
  return function(req, res)
    local started = fb.now()
    res:on_done(function(status)
      fb.log.info("%s %s %d %.1f ms", req.method, req.path, status, fb.now() - started)
    end)
  end
end

return M
