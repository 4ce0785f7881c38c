-- fastbrain.api.adapters: the trained adapters in <data_dir>/adapters/<skill>/<version>/ as
-- the dashboard's table: GET /api/adapters, GET and DELETE /api/adapters/:skill/:version, and
-- the preview: POST /api/adapters/:skill/:version/generate {prompt} -> the adapter's answer
-- beside the base model's. A version is a directory the trainer renamed into place whole; its
-- hidden partial siblings (".<version>.partial", ".<version>.replaced") are never listed.
-- The answers come from the model processes of fastbrain.model_pool: the loop keeps serving.
-- GET /api/adapters/:skill/:version/download: SKILL-VERSION.tar.gz (fastbrain.bundle).
-- A row carries its scenario result ({passed, total, run}) and, when it passes fewer than the
-- version before it, regressed_from = {version, passed, total}.
local fb = require "fastbrain"
local router = require "fastbrain.router"
local skills = require "fastbrain.api.skills"
local store = require "fastbrain.skills"
local answer = require "fastbrain.answer"
local bundle = require "fastbrain.bundle"

local M = {MAX_TOKENS = 256, MAX_PROMPT = 4000}

-- The status badge, from the eval loss when there is one, else the final (smoothed) loss.
-- The last rule has no bound: it takes everything else.
M.BADGES = {{below = 0.3, badge = "excellent"}, {below = 0.5, badge = "good"},
            {below = 1.0, badge = "fair"}, {badge = "needs work"}}

function M.badge(loss)
  if type(loss) ~= "number" then return "unknown" end
  for _, b in ipairs(M.BADGES) do if not b.below or loss < b.below then return b.badge end end
end

local function valid_version(v) return type(v) == "string" and v:match("^[%w_][%w_.-]*$") and not v:find("..", 1, true) end

local function read_json(path)
  local text = fb.fs.read(path)
  return text and fb.json.decode(text)
end

-- The loss a summary is judged by: its eval loss, else its smoothed training loss.
function M.judged_loss(summary)
  if type(summary.eval_loss) == "number" then return summary.eval_loss end
  return summary.final_loss_smoothed or summary.final_loss
end

local function row(skill, version, summary, scenarios)
  return {skill = skill, version = version, examples = summary.examples, scenarios = scenarios,
          final_loss = summary.final_loss, training_loss = summary.final_loss_smoothed or summary.final_loss,
          eval_loss = summary.eval_loss,
          base_eval_loss = summary.base_eval_loss, steps = summary.steps,
          epochs = summary.epochs, wall_time_s = summary.wall_time_s,
          tokens_per_s = summary.tokens_per_s, base_model = summary.base_model,
          device = summary.device, status = M.badge(M.judged_loss(summary))}
end

-- A version passes fewer scenarios than the one before it that has a result: flag it, naming
-- that one. rows: one skill's, newest first.
local function flag_regressions(rows)
  for i, r in ipairs(rows) do
    for j = i + 1, #rows do
      local older = rows[j].scenarios
      if older then
        local now = r.scenarios
        if now and now.passed * older.total < older.passed * now.total then
          r.regressed_from = {version = rows[j].version, passed = older.passed, total = older.total}
        end
        break
      end
    end
  end
end

-- Every complete adapter, skills in order, newest version first; with its scenario result
-- (its scenarios.json, written by fastbrain.scenario_runs) when it has one.
function M.list(data_dir)
  local out = fb.json.array()
  local root = data_dir .. "/adapters"
  for _, skill in ipairs(fb.fs.list(root) or {}) do
    if store.valid_id(skill) then
      local versions, rows = fb.fs.list(root .. "/" .. skill) or {}, {}
      for i = #versions, 1, -1 do
        local v = versions[i]
        local dir = ("%s/%s/%s"):format(root, skill, v)
        local summary = valid_version(v) and read_json(dir .. "/summary.json")
        if type(summary) == "table" then
          local scenarios = read_json(dir .. "/scenarios.json")
          rows[#rows + 1] = row(skill, v, summary, type(scenarios) == "table" and scenarios or nil)
        end
      end
      flag_regressions(rows)
      for _, r in ipairs(rows) do out[#out + 1] = r end
    end
  end
  return out
end

-- The adapter's directory, or a 400/404 raised for the route.
function M.dir(data_dir, skill, version)
  skills.check_id(skill)
  if not valid_version(version) then router.fail(400, "invalid adapter version") end
  local dir = ("%s/adapters/%s/%s"):format(data_dir, skill, version)
  if not fb.fs.mode(dir .. "/summary.json") then router.fail(404, "no adapter " .. skill .. "/" .. version) end
  return dir
end

local function preview(ctx)
  return function(req, res)
    local dir = M.dir(ctx.data_dir, req.params.skill, req.params.version)
    local body = req:json()
    local prompt = type(body) == "table" and body.prompt
    if type(prompt) ~= "string" or not prompt:find("%S") or #prompt > M.MAX_PROMPT or prompt:find("\0", 1, true) then
      local why = ("a non-empty string of at most %d bytes, without NUL"):format(M.MAX_PROMPT)
      return res:json(400, {error = "invalid request", fields = {prompt = why}})
    end
    local max_tokens = math.tointeger(body.max_tokens) or 128
    if max_tokens < 1 or max_tokens > M.MAX_TOKENS then
      return res:json(400, {error = "invalid request", fields = {max_tokens = ("1..%d"):format(M.MAX_TOKENS)}})
    end
    local summary = read_json(dir .. "/summary.json") or {}
    local skill = store.read(ctx.data_dir, req.params.skill) or {}
    local messages = {{role = "user", content = prompt}}
    if type(skill.system) == "string" and skill.system ~= "" then
      table.insert(messages, 1, {role = "system", content = skill.system})
    end
    local jobs = {}
    for _, which in ipairs({"base", "adapter"}) do  -- both at once
      local job, err = ctx.pool:submit(summary.base_model or ctx.model, messages, {
        max_tokens = max_tokens, repetition_penalty = answer.REPETITION_PENALTY, temperature = 0,
        adapter = which == "adapter" and dir or nil})
      if not job then
        for _, j in pairs(jobs) do j:cancel() end
        return res:json(503, {error = err})
      end
      jobs[which] = job
    end
    -- A client that leaves (or the route's timeout) stops both answers.
    res:on_abort(function() for _, job in pairs(jobs) do job:cancel() end end)
    local answers = {}
    for which, job in pairs(jobs) do
      local text, ev = job:wait()
      if not text then
        for _, other in pairs(jobs) do other:cancel() end
        return res:json(422, {error = "cannot answer: " .. ev.message})
      end
      answers[which] = text
    end
    res:json(200, {prompt = prompt, adapter = answers.adapter, base = answers.base})
  end
end

-- mount(app, {data_dir =, model = default base model dir, is_live = fn(skill),
-- pool = a fastbrain.model_pool})
function M.mount(app, ctx)
  local data_dir = ctx.data_dir
  app:post("/api/adapters/:skill/:version/generate", preview(ctx), {timeout = 120000})
  app:get("/api/adapters", function(_, res)
    res:json(200, {adapters = M.list(data_dir), badge_rule = M.BADGES})
  end)

  app:get("/api/adapters/:skill/:version", function(req, res)
    local dir = M.dir(data_dir, req.params.skill, req.params.version)
    local summary = read_json(dir .. "/summary.json")
    local scenarios = read_json(dir .. "/scenarios.json")
    res:json(200, {adapter = row(req.params.skill, req.params.version, summary, scenarios), summary = summary,
                   config = read_json(dir .. "/adapter_config.json") or fb.json.null})
  end)

  app:get("/api/adapters/:skill/:version/download", function(req, res)
    local skill, version = req.params.skill, req.params.version
    local dir = M.dir(data_dir, skill, version)
    local name = skill .. "-" .. version
    local readme = bundle.readme(name, read_json(dir .. "/adapter_config.json") or {},
                                 read_json(dir .. "/summary.json") or {}, store.read(data_dir, skill))
    local bytes, err = bundle.tar_gz(dir, name, readme)
    if not bytes then return res:json(500, {error = "cannot pack the adapter: " .. err}) end
    res:send(200, bytes, {["Content-Type"] = "application/gzip",
                          ["Content-Disposition"] = ('attachment; filename="%s.tar.gz"'):format(name)})
  end, {timeout = 300000})

  app:delete("/api/adapters/:skill/:version", function(req, res)
    local dir = M.dir(data_dir, req.params.skill, req.params.version)
    if ctx.is_live(req.params.skill) then router.fail(409, "training is running for this skill: cancel it first") end
    local trash = ("%s/adapters/.deleted-%s-%s-%d"):format(data_dir, req.params.skill, req.params.version, os.time())
    assert(os.rename(dir, trash))  -- gone from the list at once, whatever happens next
    local ok, err = fb.fs.remove_tree(trash)
    if not ok then fb.log.warn("adapters: %s", err) end
    res:json(200, {deleted = req.params.skill .. "/" .. req.params.version})
  end)
end

return M
