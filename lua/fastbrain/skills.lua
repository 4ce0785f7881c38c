-- fastbrain.skills: the skills on disk, <data_dir>/skills/<id>/ with skill.json (its metadata)
-- and data.jsonl (its examples). A skill appears whole or not at all (built in a hidden
-- folder, then renamed into place) and leaves the list at once when deleted (renamed away
-- first); sweep clears what a server killed in the middle left. Writes return nil, err, code
-- ("ENOSPC" when the disk is full). It knows nothing of HTTP: fastbrain.api.skills is its routes.
local fb = require "fastbrain"
local json = fb.json

local M = {}

function M.valid_id(id)
  return type(id) == "string" and #id <= 64 and id:find("^[a-z0-9_-]+$") ~= nil
end

function M.dir(data_dir, id) return data_dir .. "/skills/" .. id end

function M.data_path(data_dir, id) return M.dir(data_dir, id) .. "/data.jsonl" end

-- The skill's examples as JSONL text ("" when it has none).
function M.read_data(data_dir, id) return fb.fs.read(M.data_path(data_dir, id)) or "" end

-- The skill's metadata with its id, or nil when it does not exist.
function M.read(data_dir, id)
  local text = fb.fs.read(M.dir(data_dir, id) .. "/skill.json")
  if not text then return nil end
  local skill = json.decode(text)
  if type(skill) ~= "table" then return nil end
  skill.id = id
  return skill
end

-- Skill ids under data_dir/skills, sorted.
function M.ids(data_dir)
  local ids = {}
  for _, name in ipairs(fb.fs.list(data_dir .. "/skills") or {}) do
    if M.valid_id(name) and fb.fs.mode(M.dir(data_dir, name) .. "/skill.json") then ids[#ids + 1] = name end
  end
  return ids
end

-- Every skill's metadata, in id order.
function M.list(data_dir)
  local list = {}
  for _, id in ipairs(M.ids(data_dir)) do list[#list + 1] = M.read(data_dir, id) end
  return list
end

-- dir/skill.json written (dir made first) -> true | nil, err, code
local function write_meta(dir, meta)
  local ok, err, code = fb.fs.mkdir_p(dir)
  if not ok then return nil, err, code end
  return fb.fs.write_atomic(dir .. "/skill.json", json.encode(meta))
end

-- Replace the skill's metadata -> meta (with its id) | nil, err, code
function M.save(data_dir, id, meta)
  local ok, err, code = write_meta(M.dir(data_dir, id), meta)
  if not ok then return nil, err, code end
  meta.id = id
  return meta
end

local created = 0

-- A new skill, whole or not at all -> meta (with its id) | nil, err, code
function M.create(data_dir, id, meta)
  created = created + 1
  local tmp = ("%s/skills/.new-%s-%d"):format(data_dir, id, created)
  local ok, err, code = write_meta(tmp, meta)
  if ok then ok, err = os.rename(tmp, M.dir(data_dir, id)) end
  if not ok then
    fb.fs.remove_tree(tmp)
    return nil, err, code
  end
  meta.id = id
  return meta
end

-- The skill gone from the list at once (renamed away), then its files.
function M.delete(data_dir, id)
  local trash = ("%s/skills/.deleted-%s-%d"):format(data_dir, id, os.time())
  assert(os.rename(M.dir(data_dir, id), trash))
  fb.fs.remove_tree(trash)
end

-- At start: what a server killed in the middle left (upload temp files, half-made or
-- half-deleted skill folders).
function M.sweep(data_dir)
  local skills_dir = data_dir .. "/skills"
  for _, name in ipairs(fb.fs.list(skills_dir) or {}) do
    if name:find("^%.new%-") or name:find("^%.deleted%-") then fb.fs.remove_tree(skills_dir .. "/" .. name) end
  end
  require("fastbrain.data_upload").sweep(skills_dir)
end

-- Copy share/skills/* into data_dir/skills when that folder does not exist yet.
function M.install_bundled(data_dir, share)
  if fb.fs.mode(data_dir .. "/skills") then return end
  for _, id in ipairs(M.ids(share)) do
    assert(M.save(data_dir, id, M.read(share, id) or {}))
    local data = fb.fs.read(M.data_path(share, id))
    if data then assert(fb.fs.write_atomic(M.data_path(data_dir, id), data)) end
  end
  assert(fb.fs.mkdir_p(data_dir .. "/skills"))
end

return M
