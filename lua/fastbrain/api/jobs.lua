-- fastbrain.api.jobs: the job registry as it is: GET /api/jobs (filter by state and skill,
-- paged), GET /api/jobs/:id, GET /api/jobs/:id/log (the last log lines; with ?follow=1 or
-- Accept: text/event-stream an SSE stream of them, then of each new one as it comes, with the
-- event's seq as its id, so Last-Event-ID resumes; it ends with an "end" event once the job
-- has ended), and POST /api/jobs/:id/resume (any resumable job, not only a skill's latest).
local fb = require "fastbrain"
local router = require "fastbrain.router"
local skills = require "fastbrain.api.skills"
local json = fb.json
local jobs = fb.jobs

local M = {}

local STATES = {queued = true, running = true, succeeded = true, failed = true, cancelled = true,
                interrupted = true, unreadable = true}
local LOG_LINES, MAX_LOG_LINES = 100, 5000

local function find(id)
  local job = jobs.get(id)
  if not job then router.fail(404, ("no job '%s'"):format(id)) end
  return job
end

local function log_line(ev) return {seq = ev.seq, level = ev.level, message = ev.message} end

-- The last n log lines of a job (all after `after` when given).
local function log_lines(id, n, after)
  local lines = {}
  for _, ev in ipairs(jobs.events(id, after or 0)) do
    if ev.event == "log" then lines[#lines + 1] = log_line(ev) end
  end
  local tail = json.array()
  for i = after and 1 or math.max(1, #lines - n + 1), #lines do tail[#tail + 1] = lines[i] end
  return tail
end

local function wants_stream(req)
  local accept = req.headers.accept
  return req.query.follow == "1" or (accept ~= nil and accept:find("text/event-stream", 1, true) ~= nil)
end

-- Follow a job's log: subscribe, then replay (one loop turn, so nothing slips between);
-- "end" {state, reason} and the stream closes once the job is no longer live.
local function follow(res, job, n, last_id)
  local stream = res:sse()
  if not stream then return end
  local sent = 0
  local function finish(state, reason)
    stream:send("end", {state = state, reason = reason})
    stream:close()
  end
  local function on_event(ev)
    if ev.job ~= job.id or ev.seq <= sent then return end
    sent = ev.seq
    if ev.event == "log" then
      stream:send("log", log_line(ev), ev.seq)
    elseif ev.event == "state" and ev.state ~= "queued" and ev.state ~= "running" then
      finish(ev.state, ev.reason)
    end
  end
  local sub = jobs.subscribe(job.skill, on_event)
  stream:on_close(function() sub:close() end)
  for _, line in ipairs(log_lines(job.id, n, last_id)) do stream:send("log", line, line.seq) end
  local now = jobs.get(job.id)
  sent = math.max(sent, now.seq)
  if now.state ~= "queued" and now.state ~= "running" then finish(now.state, now.reason) end
end

-- Resume job id (the same job continues: id, directory, history) and answer: 202 {job}; 409
-- {error = "training already running", job = the live one} when its skill has a live job (the
-- job itself included); 409 {error, job} when it cannot be resumed (succeeded, or failed before
-- its first checkpoint).
function M.resume(res, id)
  local job = find(id)
  local resumed, code, detail = jobs.resume(id)
  if resumed then return res:json(202, {job = resumed}) end
  if code == "conflict" then return res:json(409, {error = "training already running", job = detail}) end
  if code == "invalid" then return res:json(409, {error = detail, job = job}) end
  res:error(500, detail)
end

function M.mount(app)
  app:get("/api/jobs", function(req, res)
    local q = req.query
    if q.state and not STATES[q.state] then router.fail(400, "state: not a job state") end
    if q.skill then skills.check_id(q.skill) end
    local page, per = skills.page_args(q)
    local all = jobs.list{state = q.state, skill = q.skill}
    local list = json.array()
    for i = (page - 1) * per + 1, math.min(#all, page * per) do list[#list + 1] = all[i] end
    res:json(200, {jobs = list, page = page, per_page = per, total = #all})
  end)

  app:get("/api/jobs/:id", function(req, res)
    res:json(200, {job = find(req.params.id)})
  end)

  app:post("/api/jobs/:id/resume", function(req, res) M.resume(res, req.params.id) end)

  app:get("/api/jobs/:id/log", function(req, res)
    local job = find(req.params.id)
    local n = math.tointeger(tonumber(req.query.lines or tostring(LOG_LINES)))
    if not n or n < 1 or n > MAX_LOG_LINES then router.fail(400, ("lines: an integer 1..%d"):format(MAX_LOG_LINES)) end
    if wants_stream(req) then
      return follow(res, job, n, math.tointeger(tonumber(req.last_event_id or "")))
    end
    res:json(200, {job = job.id, lines = log_lines(job.id, n)})
  end)
end

return M
