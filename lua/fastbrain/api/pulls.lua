-- fastbrain.api.pulls: models the server pulls from the Hugging Face Hub into its cache
-- (fastbrain.hub, as `fastbrain pull` does), as tasks the dashboard can watch, one per
-- repository at a time: POST /api/pulls {model = "ORG/NAME[@REVISION]", token = optional, for
-- a gated or private model: used, never kept} (202 with the task, 409 with the one running for
-- that repository), GET /api/pulls (this server's tasks, newest first), GET /api/pulls/:id,
-- DELETE /api/pulls/:id (cancel: the .incomplete stays for the next pull to resume), and
-- GET /api/pulls/:id/events (SSE: a snapshot, then progress, done or error, each carrying the
-- task). Tasks run in coroutines on the loop (the sockets yield) and live in memory.
local fb = require "fastbrain"
local hf_cache = require "fastbrain.hf_cache"
local hub = require "fastbrain.hub"
local router = require "fastbrain.router"

local M = {KEEP = 50} -- finished tasks kept for GET /api/pulls

local tasks = {}  -- id -> task
local order = {}  -- ids, oldest first
local next_id = 0

local function public(t)
  return {id = t.id, model = t.model, repo = t.repo, state = t.state, commit = t.commit or fb.json.null,
          file = t.file or fb.json.null, done_bytes = t.done_bytes, total_bytes = t.total_bytes,
          bytes_per_s = t.bytes_per_s or fb.json.null, eta_s = t.eta_s or fb.json.null,
          error = t.error or fb.json.null, code = t.code or fb.json.null,
          started_at = t.started_at, finished_at = t.finished_at or fb.json.null}
end

local function emit(t, event)
  for stream in pairs(t.listeners) do stream:send(event, public(t)) end
end

-- The running task of a repository, if any.
local function running(repo)
  for _, t in pairs(tasks) do
    if t.repo == repo and t.state == "running" then return t end
  end
end

local function forget_old()
  while #order > M.KEEP do
    local t = tasks[order[1]]
    if t.state == "running" then return end
    tasks[order[1]] = nil
    table.remove(order, 1)
  end
end

-- hub.pull's events into the task, and on to the listeners.
local function follow(t, ev)
  if ev.event == "start" then
    t.commit, t.total_bytes, t.done_bytes = ev.commit, ev.total_bytes, ev.cached_bytes
  elseif ev.event == "progress" then
    t.file, t.done_bytes, t.total_bytes, t.bytes_per_s, t.eta_s = ev.file, ev.done_bytes,
      ev.total_bytes, ev.bytes_per_s, ev.eta_s
  elseif ev.event == "file_start" or ev.event == "wait" then
    t.file = ev.file
  else
    return
  end
  emit(t, "progress")
end

local function run(t, token)
  local result, err, code = hub.pull(t.model, {
    token = token, on_event = function(ev) follow(t, ev) end,
    cancelled = function() return t.cancel end,
  })
  t.finished_at = os.time()
  if result then
    t.state, t.commit, t.done_bytes, t.total_bytes = "succeeded", result.commit, result.total_bytes, result.total_bytes
    t.file, t.eta_s = nil, nil
  else
    t.state, t.error, t.code = code == "cancelled" and "cancelled" or "failed", err, code
  end
  emit(t, t.state == "succeeded" and "done" or "error")
  for stream in pairs(t.listeners) do stream:close() end
  forget_old()
end

local function get(id)
  local t = tasks[tonumber(id) or -1]
  if not t then router.fail(404, ("no pull %s"):format(id)) end
  return t
end

function M.mount(app)
  app:post("/api/pulls", function(req, res)
    local body = req:json()
    local model = type(body) == "table" and body.model
    local ref, why = hf_cache.parse_ref(model)
    if not ref then return res:json(400, {error = "invalid request", fields = {model = why}}) end
    if body.token ~= nil and type(body.token) ~= "string" then
      return res:json(400, {error = "invalid request", fields = {token = "must be a string"}})
    end
    local live = running(ref.repo)
    if live then return res:json(409, {error = "already pulling " .. ref.repo, task = public(live)}) end
    next_id = next_id + 1
    local t = {id = next_id, model = model, repo = ref.repo, state = "running", done_bytes = 0,
               total_bytes = 0, started_at = os.time(), listeners = {}}
    tasks[t.id] = t
    order[#order + 1] = t.id
    fb.spawn(run, t, body.token ~= "" and body.token or nil)
    res:json(202, {task = public(t)})
  end)

  app:get("/api/pulls", function(_, res)
    local list = fb.json.array()
    for i = #order, 1, -1 do list[#list + 1] = public(tasks[order[i]]) end
    res:json(200, {pulls = list})
  end)

  app:get("/api/pulls/:id", function(req, res) res:json(200, {task = public(get(req.params.id))}) end)

  app:delete("/api/pulls/:id", function(req, res)
    local t = get(req.params.id)
    if t.state ~= "running" then router.fail(409, ("pull %d is %s"):format(t.id, t.state)) end
    t.cancel = true
    res:json(202, {task = public(t)})
  end)

  app:get("/api/pulls/:id/events", function(req, res)
    local t = get(req.params.id)
    local stream = res:sse()
    if not stream then return end
    stream:send("snapshot", public(t))
    if t.state ~= "running" then return stream:close() end
    t.listeners[stream] = true
    stream:on_close(function() t.listeners[stream] = nil end)
  end)
end

return M
