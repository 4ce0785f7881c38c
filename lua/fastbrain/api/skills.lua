-- fastbrain.api.skills: the routes of the skills (fastbrain.skills keeps them on disk):
-- GET/POST /api/skills, GET/PUT/PATCH/DELETE /api/skills/:skill, the dataset
-- (PUT replaces, POST appends, GET pages through it), one example (POST .../examples, PUT and
-- DELETE .../examples/:line) and the data's stats in the base model's tokens. A skill's base_model is a
-- model id (fastbrain.models; absent: the server's default). Uploads are checked and written
-- off the loop (fastbrain.data_upload): a refused one writes nothing. A write that fails says
-- what it was writing (507 when the disk is full) and logs the path. It does not train.
local fb = require "fastbrain"
local models = require "fastbrain.models"
local router = require "fastbrain.router"
local templates = require "fastbrain.templates"
local data_upload = require "fastbrain.data_upload"
local store = require "fastbrain.skills"
local train = require "fastbrain.train"
local json = fb.json

local M = {}

local MAX_UPLOAD = 32 << 20
local PER_PAGE, MAX_PER_PAGE = 20, 200

-- The skill's id from the path, or a 400.
function M.check_id(id)
  if not store.valid_id(id) then router.fail(400, "skill: ids are [a-z0-9_-]{1,64}") end
  return id
end

-- A task request's skill (404s as require's) and its body's count, 1..max -> skill, count,
-- body | nil, the 400's body naming the field.
function M.counted(data_dir, req, max)
  local skill = M.require(data_dir, req.params.skill)
  local body = req:json()
  local count = type(body) == "table" and type(body.count) == "number" and math.tointeger(body.count)
  if not count or count < 1 or count > max then
    return nil, {error = "invalid request", fields = {count = ("an integer 1..%d"):format(max)}}
  end
  return skill, count, body
end

-- The skill (after a 400 for a bad id and a 404 for an unknown one).
function M.require(data_dir, id)
  local skill = store.read(data_dir, M.check_id(id))
  if not skill then router.fail(404, ("no skill '%s'"):format(id)) end
  return skill
end

-- ---- validation ---------------------------------------------------------------------------

local function is_string(max)
  return function(v)
    if type(v) ~= "string" then return "must be a string" end
    if #v > max then return ("must be at most %d bytes"):format(max) end
  end
end

local function check_avatar(v)
  if type(v) ~= "table" or json.is_array(v) then return "must be an object {emoji, color}" end
  for k in pairs(v) do
    if k ~= "emoji" and k ~= "color" then return ("unknown field '%s'"):format(k) end
  end
  if v.emoji ~= nil and (type(v.emoji) ~= "string" or #v.emoji == 0 or #v.emoji > 32) then
    return "emoji must be a short string"
  end
  if v.color ~= nil and (type(v.color) ~= "string" or not v.color:find("^#%x%x%x%x%x%x$")) then
    return "color must be #RRGGBB"
  end
end

local function check_prompts(v)
  if type(v) ~= "table" or (next(v) ~= nil and not json.is_array(v)) then return "must be a list of strings" end
  if #v > 20 then return "at most 20 prompts" end
  for i, p in ipairs(v) do
    if type(p) ~= "string" or #p == 0 or #p > 2000 then return ("[%d] must be a string of 1..2000 bytes"):format(i) end
  end
end

-- Check t against a table of field checks; problems go into errors[prefix .. field].
local function check_fields(t, checks, errors, prefix)
  if type(t) ~= "table" or (next(t) ~= nil and json.is_array(t)) then
    errors[prefix ~= "" and prefix:sub(1, -2) or "body"] = "must be an object"
    return
  end
  for k, v in pairs(t) do
    local check, name = checks[k], prefix .. tostring(k)
    if check == nil then
      errors[name] = "unknown field"
    elseif type(check) == "table" then
      check_fields(v, check, errors, name .. ".")
    else
      errors[name] = check(v)
    end
  end
end

-- 400 {"error": what, "fields": {name = problem}}.
function M.bad_fields(res, what, errors)
  res:json(400, {error = what, fields = errors})
end

local META = {
  name = is_string(100), description = is_string(4000), system = is_string(16000),
  avatar = check_avatar, template = templates.name_problem, sample_prompts = check_prompts,
  base_model = is_string(300),
  defaults = function(v)
    local k, msg = next(train.check_request(v) or {})
    if k then return k .. ": " .. msg end
  end,
}

-- The metadata of a POST (with its id), a PUT or (partial) a PATCH -> nil, or {field = problem}.
-- A base model must be one the server has (fastbrain.models).
local function check_meta(data_dir, body, with_id, partial)
  local errors = {}
  local checks = setmetatable({}, {__index = META})
  if with_id then
    checks.id = function(v) if not store.valid_id(v) then return "must match [a-z0-9_-]{1,64}" end end
  end
  if partial then -- a null removes a field, but for the name
    for k, check in pairs(META) do
      if k ~= "name" then checks[k] = function(v) if v ~= json.null then return check(v) end end end
    end
  end
  check_fields(body, checks, errors, "")
  if type(body) == "table" then
    if body.name == nil and not partial then errors.name = "is required" end
    if with_id and body.id == nil then errors.id = "is required" end
    if type(body.base_model) == "string" and not errors.base_model then
      local _, err = models.path(body.base_model, data_dir)
      errors.base_model = err
    end
  end
  return next(errors) and errors or nil
end

-- ---- the dataset ------------------------------------------------------------------------

-- The body of an upload of lines (a dataset, scenarios) as JSONL text: x-ndjson as is; JSON as
-- a list of objects (or {key = list}, key "examples" by default).
local function is_jsonl(req)
  local ctype = (req.headers["content-type"] or ""):match("^[^;]*"):lower()
  return ctype == "application/x-ndjson" or ctype == "application/jsonl"
end

function M.upload_text(req, key)
  local text, err = data_upload.to_jsonl(req.body, is_jsonl(req), key)
  if not text then router.fail(400, err) end
  return text
end

-- A write of the skill's files that failed: the path goes to the log, the client gets what was
-- being written (507 when the disk is full).
local function write_failed(what, err, code)
  fb.log.error("%s", tostring(err))
  if code == "ENOSPC" then router.fail(507, "disk full while writing " .. what) end
  router.fail(500, "cannot write " .. what)
end

-- One upload at a time per skill: an append reads the data the other one is replacing.
local uploading = {}
local function claim(id)
  if uploading[id] then router.fail(409, "another upload to this skill is in progress") end
  uploading[id] = true
  return setmetatable({}, {__close = function() uploading[id] = nil end})
end

-- A change to the skill's data, checked and written by a child process (fastbrain.data_upload)
-- while the loop serves others: change(req, skill) -> data_upload.write's fields. The answer
-- is {skill, examples (in all)} with the child's added or line.
local function change_data(data_dir, change)
  return function(req, res)
    local skill = M.require(data_dir, req.params.skill)
    local _ <close> = claim(skill.id)
    local o = change(req, skill)
    o.dir, o.data, o.template = store.dir(data_dir, skill.id), store.data_path(data_dir, skill.id), skill.template
    o.still_wanted = function() return not res.done end
    local answer = data_upload.write(o)
    local status = answer.status
    answer.status = nil
    if status == 200 then
      return res:json(200, {skill = skill.id, examples = answer.examples, added = answer.added, line = answer.line})
    end
    if status ~= 499 then res:json(status, answer) end
  end
end

-- PUT (replace) and POST (append) of the dataset.
local function write_data(data_dir, append)
  return change_data(data_dir, function(req)
    return {body = req.body, jsonl = is_jsonl(req), append = append}
  end)
end

-- The example number in the path, or a 400.
local function example_line(req)
  local n = math.tointeger(tonumber(req.params.line))
  if not n or n < 1 then router.fail(400, "line: an integer >= 1") end
  return n
end

-- One example in the body (a JSON object in any accepted shape) as a JSONL line, or a 400.
local function one_example(req)
  local ex = req:json()
  if type(ex) ~= "table" or json.is_array(ex) then router.fail(400, "body: one example (a JSON object) expected") end
  return json.encode(ex) .. "\n"
end

local function page_args(query)
  local page = math.tointeger(tonumber(query.page or "1"))
  local per = math.tointeger(tonumber(query.per_page or tostring(PER_PAGE)))
  if not page or page < 1 then router.fail(400, "page: an integer >= 1") end
  if not per or per < 1 or per > MAX_PER_PAGE then
    router.fail(400, ("per_page: an integer 1..%d"):format(MAX_PER_PAGE))
  end
  return page, per
end
M.page_args = page_args

-- ---- routes -----------------------------------------------------------------------------

-- The skill a store write returned, or the 507 or 500 of a failed one.
local function written(skill, err, code)
  if not skill then write_failed("the skill", err, code) end
  return skill
end

-- A skill as listed: its metadata plus the number of examples.
local function summary(data_dir, skill)
  skill.examples = data_upload.count_lines(store.read_data(data_dir, skill.id))
  return skill
end

-- mount(app, {data_dir=, is_live = fn(id) -> bool, model = the server's default base model}).
function M.mount(app, opts)
  local data_dir, is_live = opts.data_dir, opts.is_live

  app:get("/api/skills", function(_, res)
    local list = json.array()
    for _, id in ipairs(store.ids(data_dir)) do list[#list + 1] = summary(data_dir, store.read(data_dir, id)) end
    res:json(200, {skills = list})
  end)

  app:post("/api/skills", function(req, res)
    local body = req:json()
    local errors = check_meta(data_dir, body, true)
    if errors then return M.bad_fields(res, "invalid skill", errors) end
    local id = body.id
    body.id = nil
    if store.read(data_dir, id) then router.fail(409, ("skill '%s' already exists"):format(id)) end
    res:json(201, {skill = summary(data_dir, written(store.create(data_dir, id, body)))})
  end)

  app:get("/api/skills/:skill", function(req, res)
    res:json(200, {skill = summary(data_dir, M.require(data_dir, req.params.skill))})
  end)

  app:put("/api/skills/:skill", function(req, res)
    local skill = M.require(data_dir, req.params.skill)
    local body = req:json()
    local errors = check_meta(data_dir, body, false)
    if errors then return M.bad_fields(res, "invalid skill", errors) end
    res:json(200, {skill = summary(data_dir, written(store.save(data_dir, skill.id, body)))})
  end)

  -- Some fields changed (a null removes one: base_model null goes back to the default).
  app:patch("/api/skills/:skill", function(req, res)
    local skill = M.require(data_dir, req.params.skill)
    local body = req:json()
    local errors = check_meta(data_dir, body, false, true)
    if errors then return M.bad_fields(res, "invalid skill", errors) end
    skill.id = nil
    for k, v in pairs(body) do
      if v == json.null then skill[k] = nil else skill[k] = v end
    end
    res:json(200, {skill = summary(data_dir, written(store.save(data_dir, req.params.skill, skill)))})
  end)

  app:delete("/api/skills/:skill", function(req, res)
    local skill = M.require(data_dir, req.params.skill)
    if is_live(skill.id) then router.fail(409, "training is running for this skill: cancel it first") end
    store.delete(data_dir, skill.id)
    res:json(200, {deleted = skill.id})
  end)

  local upload = {max_body = MAX_UPLOAD, timeout = 60000}
  app:put("/api/skills/:skill/data", write_data(data_dir, false), upload)
  app:post("/api/skills/:skill/data", write_data(data_dir, true), upload)

  -- One example at a time, numbered as GET .../data numbers them (its `line`), checked as an
  -- upload is: POST appends, PUT replaces example N, DELETE removes it.
  app:post("/api/skills/:skill/examples", change_data(data_dir, function(req)
    return {body = one_example(req), jsonl = true, append = true}
  end))
  app:put("/api/skills/:skill/examples/:line", change_data(data_dir, function(req)
    return {body = one_example(req), jsonl = true, line = example_line(req)}
  end))
  app:delete("/api/skills/:skill/examples/:line", change_data(data_dir, function(req)
    return {delete = example_line(req)}
  end))

  app:get("/api/skills/:skill/data", function(req, res)
    local skill = M.require(data_dir, req.params.skill)
    local page, per = page_args(req.query)
    local examples, total, first = json.array(), 0, (page - 1) * per + 1
    for line in store.read_data(data_dir, skill.id):gmatch("[^\n]+") do
      if line:find("%S") then
        total = total + 1
        if total >= first and total < first + per then
          examples[#examples + 1] = {line = total, example = json.decode(line) or line}
        end
      end
    end
    res:json(200, {skill = skill.id, page = page, per_page = per, total = total, examples = examples})
  end)

  -- Counted in the tokens of the skill's base model (else the server's default), as a run
  -- on it would cut them: `tokenizer` names that model ("bytes" without one).
  app:get("/api/skills/:skill/stats", function(req, res)
    local skill = M.require(data_dir, req.params.skill)
    local path = store.data_path(data_dir, skill.id)
    local model = skill.base_model and models.path(skill.base_model, data_dir) or opts.model
    local tokenizer = model and models.id(model, data_dir) or "bytes"
    local st = fb.fs.stat(path)
    if not st or st.size == 0 then
      return res:json(200, {skill = skill.id, tokenizer = tokenizer, stats = {examples = 0}})
    end
    local answer = data_upload.stats(path, {template = skill.template, model = model,
                                            max_len = (skill.defaults or {}).max_len})
    if answer.status ~= 200 then return res:json(answer.status, {error = answer.error}) end
    res:json(200, {skill = skill.id, tokenizer = tokenizer, stats = answer.stats, problems = answer.problems})
  end)
end

return M
