-- fastbrain.api.jobs: the job registry as it is: GET /api/jobs (filter by state and skill,
-- paged), GET /api/jobs/:id, GET /api/jobs/:id/log (the last log lines).
local fb = require "fastbrain"
local router = require "fastbrain.router"
local skills = require "fastbrain.api.skills"
local json = fb.json
local jobs = fb.jobs

local M = {}

local STATES = {queued = true, running = true, succeeded = true, failed = true, cancelled = true,
                interrupted = true}
local LOG_LINES, MAX_LOG_LINES = 100, 5000

local function find(id)
  local job = jobs.get(id)
  if not job then router.fail(404, ("no job '%s'"):format(id)) end
  return job
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

  app:get("/api/jobs/:id/log", function(req, res)
    local job = find(req.params.id)
    local n = math.tointeger(tonumber(req.query.lines or tostring(LOG_LINES)))
    if not n or n < 1 or n > MAX_LOG_LINES then router.fail(400, ("lines: an integer 1..%d"):format(MAX_LOG_LINES)) end
    local lines = {}
    for _, ev in ipairs(jobs.events(job.id)) do
      if ev.event == "log" then lines[#lines + 1] = {seq = ev.seq, level = ev.level, message = ev.message} end
    end
    local tail = json.array()
    for i = math.max(1, #lines - n + 1), #lines do tail[#tail + 1] = lines[i] end
    res:json(200, {job = job.id, lines = tail})
  end)
end

return M
