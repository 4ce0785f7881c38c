-- fastbrain.model_pool: the server's model processes, one per base model, started on first
-- use and kept while they are used (fastbrain.model_server is the other end). Generation never
-- runs on the server's loop, and no process is started per request. Each model has a
-- concurrency limit (answers in flight in its process, taking turns a token at a time) and a
-- bounded queue behind it; a full queue refuses at once. Every request has a deadline, and a
-- cancelled one (its client went away) stops within a token.
--   new{concurrency = 2, queue = 16, deadline_ms = 120000, idle_ms = 600000} -> pool
--   pool:submit(model_dir, messages, opts) -> job | nil, err, code ("busy": the queue is full;
--     "closed": after close)
--     opts: adapter (dir), max_tokens, temperature, top_p, top_k, seed, repetition_penalty,
--     stop_text; deadline_ms overrides the pool's.
--   job:next() -> event, in a coroutine: {event = "start", prompt_tokens}, {event = "delta",
--     text}, then one of {event = "done", finish_reason, prompt_tokens, completion_tokens, ms}
--     and {event = "error", message, code ("prompt": the conversation does not fit the chat
--     template or the context; "timeout"; "failed")}; nil after that.
--   job:wait() -> text, done | nil, error: the whole answer, in a coroutine.
--   job:cancel(): stop it (its queue place or its answer); the job ends "cancelled".
--   pool:close(): stop every model process.
local fb = require "fastbrain"
local cosocket = require "fastbrain.cosocket"
local lines = require "fastbrain.lines"
local process = require "fastbrain.process"

local M = {}
local EXE = process.exepath()
local CONNECT_MS = 30000  -- from spawn to both connections: the model loads after them

local Pool = {}
Pool.__index = Pool

function M.new(opts)
  opts = opts or {}
  return setmetatable({concurrency = opts.concurrency or 2, queue = opts.queue or 16,
                       deadline_ms = opts.deadline_ms or 120000, idle_ms = opts.idle_ms or 600000,
                       workers = {}, next_id = 0}, Pool)
end

local Job = {}
Job.__index = Job

local function push(job, ev)
  if job.ended then return end
  job.events[#job.events + 1] = ev
  if ev.event == "done" or ev.event == "error" then
    job.ended = true
    if job.deadline then job.deadline:stop() end
  end
  local co = job.waiter
  job.waiter = nil
  if co and coroutine.status(co) == "suspended" then fb.resume(co) end
end

function Job:next()
  while #self.events == 0 do
    if self.ended then return nil end
    self.waiter = coroutine.running()
    coroutine.yield()
  end
  return table.remove(self.events, 1)
end

function Job:wait()
  local parts = {}
  for ev in function() return self:next() end do
    if ev.event == "delta" then parts[#parts + 1] = ev.text end
    if ev.event == "done" then return table.concat(parts), ev end
    if ev.event == "error" then return nil, ev end
  end
end

local function random_token()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(16)
  f:close()
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local dispatch

local function fail_all(w, message)
  for _, job in pairs(w.running) do push(job, {event = "error", message = message, code = "failed"}) end
  for _, job in ipairs(w.waiting) do push(job, {event = "error", message = message, code = "failed"}) end
  w.running, w.waiting = {}, {}
end

local function finished(w, job)
  w.running[job.id] = nil
  w.active = w.active - 1
  dispatch(w)
end

local function on_event(w, ev)
  if ev.event == "ready" then
    w.state, w.info = "ready", ev
    dispatch(w)
  elseif ev.event == "failed" then
    w.failure = "cannot load " .. w.model .. ": " .. tostring(ev.message)
  elseif ev.id and w.running[ev.id] then
    local job = w.running[ev.id]
    ev.id = nil
    if ev.event == "error" then ev.code = ev.code or "failed" end
    if ev.event == "done" then
      local count = ev.finish_reason == "cancelled" and "cancelled" or "answered"
      w[count] = w[count] + 1
    end
    if ev.event == "done" or ev.event == "error" then finished(w, job) end
    push(job, ev)
  end
end

-- Accept the model process's two connections; each first says its token and channel.
local function accept_channels(listener, token)
  listener.s:settimeout(CONNECT_MS)
  local socks = {}
  for _ = 1, 2 do
    local sock, err = listener:accept()
    if not sock then return nil, "the model process did not connect: " .. tostring(err) end
    sock:settimeout(CONNECT_MS)
    local hello = lines.reader(sock):receive()
    sock:settimeout(nil)
    if not (hello and hello.token == token and (hello.channel == "requests" or hello.channel == "events")) then
      sock:close()
      return nil, "a connection to the model port did not carry the token"
    end
    socks[hello.channel] = sock
  end
  if not (socks.requests and socks.events) then return nil, "the model process opened the same channel twice" end
  return socks
end

local function run_worker(pool, w)
  local listener, err = cosocket.listen("127.0.0.1", 0)
  local token = random_token()
  local p
  if listener then
    p, err = process.spawn{argv = {EXE, "--log-level", "warn", "model-server", "--model", w.model,
                                   "--port", tostring(listener.port)},
                           stdin = token .. "\n", max_output = 64 * 1024}
  end
  local socks
  if p then
    w.process = p
    socks, err = accept_channels(listener, token)
  end
  if listener then listener:close() end
  if socks then
    w.requests = lines.writer(socks.requests)
    local events = lines.reader(socks.events)
    while true do  -- until the process closes its connection (exiting closes it too)
      local ev = events:receive()
      if not ev then break end
      on_event(w, ev)
    end
    socks.requests:close()
    socks.events:close()
  end
  w.state = "dead"
  if pool.workers[w.model] == w then pool.workers[w.model] = nil end
  if w.idle then w.idle:stop() end
  if p then  -- one that closed its connection and lives on is stopped
    p:kill()
    local r = p:wait()
    w.exit = r.signal and ("signal " .. r.signal) or ("status " .. tostring(r.code))
    w.stderr = r.stderr
  end
  local why = w.failure or err or ("the model process ended (" .. tostring(w.exit) .. ")")
  local last = w.stderr and w.stderr:match("([^\n]+)\n*$")
  if not w.failure and last then why = why .. ": " .. last end
  fb.log.warn("model_pool: %s: %s", w.model, why)
  fail_all(w, why)
end

function dispatch(w)
  if w.state ~= "ready" then return end
  while w.active < w.pool.concurrency and #w.waiting > 0 do
    local job = table.remove(w.waiting, 1)
    w.active = w.active + 1
    w.running[job.id] = job
    w.requests:send{op = "chat", id = job.id, messages = job.messages, opts = job.opts}
  end
  if w.idle then w.idle:stop() end
  w.idle = nil
  if w.active == 0 then  -- an unused model gives its memory back
    w.idle = fb.timer.after(w.pool.idle_ms, function()
      if w.pool.workers[w.model] == w then w.pool.workers[w.model] = nil end  -- new requests start anew
      if w.process then w.process:kill() end
    end)
  end
end

local function worker(pool, model)
  local w = pool.workers[model]
  if not w then
    w = {pool = pool, model = model, state = "starting", active = 0, running = {}, waiting = {},
         answered = 0, cancelled = 0}
    pool.workers[model] = w
    fb.spawn(run_worker, pool, w)
  end
  return w
end

-- Out of the queue (true), or the process told to stop it (it answers "done", cancelled).
local function stop(job)
  local w = job.worker
  for i, queued in ipairs(w.waiting) do
    if queued == job then
      table.remove(w.waiting, i)
      return true
    end
  end
  if w.running[job.id] and w.requests then w.requests:send{op = "cancel", id = job.id} end
  return false
end

function Pool:submit(model, messages, opts)
  opts = opts or {}
  if self.closed then return nil, "the server is stopping", "closed" end
  local w = worker(self, model)
  if #w.waiting >= self.queue then
    return nil, ("%d answers are waiting for %s already; try again shortly"):format(#w.waiting, model), "busy"
  end
  self.next_id = self.next_id + 1
  local engine = {}
  for k, v in pairs(opts) do if k ~= "deadline_ms" then engine[k] = v end end
  local job = setmetatable({id = self.next_id, worker = w, messages = messages, opts = engine, events = {}}, Job)
  local ms = opts.deadline_ms or self.deadline_ms
  job.deadline = fb.timer.after(ms, function()
    push(job, {event = "error", code = "timeout", message = ("no answer within %g s"):format(ms / 1000)})
    stop(job)
  end)
  w.waiting[#w.waiting + 1] = job
  dispatch(w)
  return job
end

function Job:cancel()
  if self.ended then return end
  if stop(self) then
    push(self, {event = "done", finish_reason = "cancelled", prompt_tokens = 0, completion_tokens = 0})
  end
end

-- The models with a process, for a status page: {model, state ("starting", "ready"), pid,
-- active, waiting, answered, cancelled (by a client or a deadline)}, by model.
function Pool:status()
  local out = fb.json.array()
  for model, w in pairs(self.workers) do
    out[#out + 1] = {model = model, state = w.state, pid = w.process and w.process.pid or fb.json.null,
                     active = w.active, waiting = #w.waiting, answered = w.answered, cancelled = w.cancelled}
  end
  table.sort(out, function(a, b) return a.model < b.model end)
  return out
end

function Pool:close()
  self.closed = true
  for _, w in pairs(self.workers) do
    if w.idle then w.idle:stop() end
    if w.process then w.process:kill() end
  end
end

return M
