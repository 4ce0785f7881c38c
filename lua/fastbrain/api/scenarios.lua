-- fastbrain.api.scenarios: a skill's test scenarios (fastbrain.scenarios) over HTTP.
--   GET    /api/skills/:skill/scenarios        {scenarios}; 422 naming the file's bad lines
--   PUT    /api/skills/:skill/scenarios        replace all: JSONL (application/x-ndjson) or a
--                                              JSON list (or {scenarios = list}); 400 {lines}
--   POST   /api/skills/:skill/scenarios        add one (a JSON object): 201, 409 for a taken id
--   PUT    /api/skills/:skill/scenarios/:id    replace one; DELETE the same path removes it
--   POST   /api/skills/:skill/scenarios/suggest {count}: 202, drafts from the provider chain
--          (fastbrain.suggest) as a task; 409 while one runs. GET .../suggest: the latest task
--          ({state, drafts, dropped, provider, fallbacks, error}); GET .../suggest/events: SSE.
--          Drafts are not saved: the person keeps each with POST, edited or not.
-- Every change is validated whole before the file is replaced, atomically.
local fb = require "fastbrain"
local router = require "fastbrain.router"
local scenarios = require "fastbrain.scenarios"
local skills = require "fastbrain.api.skills"
local store = require "fastbrain.skills"
local suggest = require "fastbrain.suggest"
local tasks = require "fastbrain.tasks"

local M = {}

function M.path(data_dir, id) return store.dir(data_dir, id) .. "/scenarios.jsonl" end

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
    if bundled and fb.fs.mode(store.dir(data_dir, id)) and not fb.fs.mode(M.path(data_dir, id)) then
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

local function public(task)
  return {id = task.id, skill = task.skill, state = task.state, count = task.count,
          drafts = task.drafts or fb.json.array(), dropped = task.dropped or {},
          provider = task.provider or fb.json.null, fallbacks = task.fallbacks or fb.json.array(),
          error = task.error or fb.json.null}
end

-- A few of the skill's examples, for the providers to see its voice.
local function examples_of(data_dir, id)
  local out = {}
  for line in store.read_data(data_dir, id):gmatch("[^\n]+") do
    local ex = fb.json.decode(line)
    if type(ex) == "table" and type(ex.messages) == "table" then out[#out + 1] = ex end
    if #out == 5 then break end
  end
  return out
end

local function run_suggest(board, task, ctx, skill)
  local report, err = suggest.suggest{chain = ctx.chain, skill = skill, count = task.count,
                                      examples = examples_of(ctx.data_dir, skill.id),
                                      existing = M.read(ctx.data_dir, skill.id) or {}}
  if report then
    task.drafts, task.dropped, task.provider, task.fallbacks = report.drafts, report.dropped,
      report.provider, report.fallbacks
  end
  task.error = err
  task.state = report and #report.drafts > 0 and "succeeded" or "failed"
  if report and #report.drafts == 0 then task.error = "the providers wrote no usable scenario" end
  board:save(task)
  board:emit(task, task.state == "succeeded" and "done" or "error")
end

local function mount_suggest(app, ctx, base)
  local board = tasks.board{what = "suggest", public = public,
                            file = function(id) return store.dir(ctx.data_dir, id) .. "/suggest.json" end}
  app:post(base .. "/suggest", function(req, res)
    local skill, count = skills.counted(ctx.data_dir, req, suggest.MAX_COUNT)
    if not skill then return res:json(400, count) end
    local task, live = board:start(skill.id, {skill = skill.id, state = "running", count = count}, run_suggest, ctx, skill)
    if not task then return res:json(409, {error = "suggestions already running", task = public(live)}) end
    res:json(202, {task = public(task)})
  end)
  app:get(base .. "/suggest", function(req, res)
    local task = board:latest(skills.require(ctx.data_dir, req.params.skill).id)
    res:json(200, {task = task and public(task) or fb.json.null})
  end)
  app:get(base .. "/suggest/events", function(req, res)
    board:watch(res, skills.check_id(req.params.skill))
  end)
end

-- mount(app, {data_dir =, chain = a fastbrain.fallback chain (for suggestions)})
function M.mount(app, ctx)
  local data_dir = ctx.data_dir
  local base = "/api/skills/:skill/scenarios"
  mount_suggest(app, ctx, base)

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
