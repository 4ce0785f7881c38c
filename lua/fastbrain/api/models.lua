-- fastbrain.api.models: the base models as the dashboard sees them (fastbrain.models):
-- GET /api/models (every model, which is the server's default, which skill trains on each),
-- GET /api/models/<id> and DELETE /api/models/<id> (a pulled or data-directory model; 409 while
-- a skill names it or a job trains on it). Ids may hold a slash (ORG/NAME), so they are the
-- rest of the path. It does not download: pulls are fastbrain.api.pulls'.
local fb = require "fastbrain"
local models = require "fastbrain.models"
local router = require "fastbrain.router"
local skills = require "fastbrain.skills"

local M = {}

local LIVE = {queued = true, running = true}

-- The skills whose base model is id.
local function skills_on(data_dir, id, default)
  local on = fb.json.array()
  for _, s in ipairs(skills.list(data_dir)) do
    if (s.base_model or default) == id then on[#on + 1] = s.id end
  end
  return on
end

-- mount(app, {data_dir =, default = the id of the server's default model})
function M.mount(app, ctx)
  local data_dir, default = ctx.data_dir, ctx.default

  local function described(id)
    local t, err = models.describe(id, data_dir)
    if not t then router.fail(404, err) end
    t.default = id == default
    t.skills = skills_on(data_dir, id, default)
    return t
  end

  app:get("/api/models", function(_, res)
    local list = fb.json.array()
    for _, t in ipairs(models.list(data_dir)) do
      t.default = t.id == default
      t.skills = skills_on(data_dir, t.id, default)
      list[#list + 1] = t
    end
    res:json(200, {models = list, default = default})
  end)

  app:get("/api/models/*", function(req, res)
    res:json(200, {model = described(req.params["*"])})
  end)

  app:delete("/api/models/*", function(req, res)
    local t = described(req.params["*"])
    if t.default then router.fail(409, t.id .. " is the server's default model") end
    if #t.skills > 0 then
      router.fail(409, ("%s is the base model of %s: pick another first"):format(t.id, table.concat(t.skills, ", ")))
    end
    for _, job in ipairs(fb.jobs.list{}) do
      if LIVE[job.state] and job.spec and models.id(job.spec.model or "", data_dir) == t.id then
        router.fail(409, ("job %s trains on %s"):format(job.id, t.id))
      end
    end
    local ok, err = models.remove(t.id, data_dir)
    if not ok then router.fail(t.source == "bundled" and 409 or 500, err) end
    res:json(200, {deleted = t.id})
  end)
end

return M
