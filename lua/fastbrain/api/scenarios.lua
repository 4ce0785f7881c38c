-- fastbrain.api.scenarios: a skill's test scenarios (fastbrain.scenarios) over HTTP.
--   GET    /api/skills/:skill/scenarios        {scenarios}; 422 naming the file's bad lines
--   PUT    /api/skills/:skill/scenarios        replace all: JSONL (application/x-ndjson) or a
--                                              JSON list (or {scenarios = list}); 400 {lines}
--   POST   /api/skills/:skill/scenarios        add one (a JSON object): 201, 409 for a taken id
--   PUT    /api/skills/:skill/scenarios/:id    replace one; DELETE the same path removes it
-- Every change is validated whole before the file is replaced, atomically.
local fb = require "fastbrain"
local router = require "fastbrain.router"
local scenarios = require "fastbrain.scenarios"
local skills = require "fastbrain.api.skills"

local M = {}

function M.path(data_dir, id) return skills.dir(data_dir, id) .. "/scenarios.jsonl" end

-- The skill's scenarios -> list (empty when it has none) | nil, problems
function M.read(data_dir, id)
  local text = fb.fs.read(M.path(data_dir, id))
  if not text then return {} end
  return scenarios.parse(text)
end

-- Give each bundled skill in data_dir that has no scenarios file the bundled set.
function M.install_bundled(data_dir, share)
  for _, id in ipairs(fb.fs.list(share .. "/skills") or {}) do
    local bundled = fb.fs.read(M.path(share, id))
    if bundled and fb.fs.mode(skills.dir(data_dir, id)) and not fb.fs.mode(M.path(data_dir, id)) then
      assert(fb.fs.write_atomic(M.path(data_dir, id), bundled))
    end
  end
end

local function bad_lines(res, what, problems)
  return res:json(400, {error = ("invalid scenarios: %d bad line(s)"):format(#problems), lines = problems, file = what})
end

-- The skill's scenarios for a change (a 404, or a 422 when the file on disk is broken).
local function current(data_dir, id)
  local list, problems = M.read(data_dir, skills.require(data_dir, id).id)
  if not list then
    router.fail(422, ("skills/%s/scenarios.jsonl: %d bad line(s), line %s: %s; fix or replace the file")
      :format(id, #problems, tostring(problems[1].line), problems[1].message))
  end
  return list
end

local function save(data_dir, id, list)
  assert(fb.fs.write_atomic(M.path(data_dir, id), scenarios.encode(list)))
end

local function find(list, sid)
  for i, s in ipairs(list) do if s.id == sid then return i end end
end

-- The path's skill and scenario: skill id, scenario id, the list, the scenario's index (or a 404).
local function located(data_dir, req)
  local id, sid = req.params.skill, req.params.id
  local list = current(data_dir, id)
  local at = find(list, sid)
  if not at then router.fail(404, ("no scenario %q"):format(sid)) end
  return id, sid, list, at
end

local function checked(body)
  local s, err = scenarios.check_one(body)
  if not s then router.fail(400, "invalid scenario: " .. err) end
  return s
end

-- mount(app, {data_dir =})
function M.mount(app, ctx)
  local data_dir = ctx.data_dir
  local base = "/api/skills/:skill/scenarios"

  app:get(base, function(req, res)
    res:json(200, {scenarios = fb.json.array(current(data_dir, req.params.skill))})
  end)

  app:put(base, function(req, res)
    local id = skills.require(data_dir, req.params.skill).id
    local list, problems = scenarios.parse(skills.upload_text(req, "scenarios"))
    if not list then return bad_lines(res, "body", problems) end
    save(data_dir, id, list)
    res:json(200, {scenarios = fb.json.array(list)})
  end, {max_body = 4 << 20})

  app:post(base, function(req, res)
    local id = req.params.skill
    local list = current(data_dir, id)
    local s = checked(req:json())
    if find(list, s.id) then router.fail(409, ("scenario %q exists: PUT %s/%s replaces it"):format(s.id, base, s.id)) end
    if #list >= scenarios.MAX_SCENARIOS then router.fail(400, ("at most %d scenarios"):format(scenarios.MAX_SCENARIOS)) end
    list[#list + 1] = s
    save(data_dir, id, list)
    res:json(201, {scenario = s})
  end)

  app:put(base .. "/:id", function(req, res)
    local id, sid, list, at = located(data_dir, req)
    local body = req:json()
    if type(body) == "table" and body.id == nil then body.id = sid end
    local s = checked(body)
    if s.id ~= sid then router.fail(400, ("invalid scenario: id: %q is not the path's %q"):format(s.id, sid)) end
    list[at] = s
    save(data_dir, id, list)
    res:json(200, {scenario = s})
  end)

  app:delete(base .. "/:id", function(req, res)
    local id, sid, list, at = located(data_dir, req)
    table.remove(list, at)
    save(data_dir, id, list)
    res:json(200, {deleted = sid})
  end)
end

return M
