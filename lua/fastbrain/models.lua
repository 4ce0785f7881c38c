-- fastbrain.models: the base models one can train on: the bundled ones (share/models/), the
-- data directory's own (DATA/models/), and the Hugging Face cache's (ORG/NAME, pulled by
-- `fastbrain pull` or by any other tool), each described without loading its weights. A
-- model's id is what a skill stores as its base model: a bundled or data-directory model's
-- directory name, or ORG/NAME[@REVISION]; `path(id)` turns it into what the engine loads.
--   list(data_dir) -> {entry...}; describe(id, data_dir) -> entry | nil, err
--   path(id, data_dir) -> a directory or ORG/NAME | nil, err; id(path, data_dir) -> its id;
--   remove(id, data_dir)
--   main(args) -> exit status: the body of `fastbrain models`.
-- An entry: {id, source = "bundled" | "data" | "cache", dir, revision, architecture,
-- parameters, dtype, context, template, bytes, supported, reason}.
local fb = require "fastbrain"
local hf_cache = require "fastbrain.hf_cache"
local lm = require "fastbrain.model.core"
local model = require "fastbrain.model"

local M = {}

local function bundled_root() return fb.root .. "/share/models" end

-- The directory a plain id names (bundled first, then the data directory's), or nil.
local function local_dir(id, data_dir)
  if id:find("/", 1, true) or id:sub(1, 1) == "." then return nil end
  for _, root in ipairs{bundled_root(), data_dir and data_dir .. "/models"} do
    if root and fb.fs.mode(root .. "/" .. id .. "/config.json") then return root .. "/" .. id, root end
  end
end

-- The id a model directory or name goes by: a bundled or data-directory model's directory
-- name, else the name as given.
function M.id(name, data_dir)
  for _, root in ipairs{bundled_root() .. "/", data_dir and data_dir .. "/models/"} do
    if root and name:sub(1, #root) == root and not name:find("/", #root + 1, true) then
      return name:sub(#root + 1)
    end
  end
  return name
end

function M.path(id, data_dir)
  if type(id) ~= "string" or id == "" then return nil, "a model id is a non-empty string" end
  local dir = local_dir(id, data_dir)
  if dir then return dir end
  local found, err = model.locate(id)
  if not found then return nil, err end
  return id
end

function M.describe(id, data_dir)
  local name, err = M.path(id, data_dir)
  if not name then return nil, err end
  local t, ierr = lm.inspect(name)
  if not t then return nil, ierr end
  local _, root = local_dir(id, data_dir)
  t.id = id
  t.source = root == bundled_root() and "bundled" or root and "data" or "cache"
  if not t.architecture then -- not one the engine parses: say what it is from the file itself
    local config = model.read_json(t.dir .. "/config.json")
    local archs = type(config) == "table" and config.architectures
    t.architecture = type(archs) == "table" and archs[1] or nil
  end
  t.template = model.template(t.dir)
  return t
end

-- The repositories of the Hugging Face cache, as ids: ORG/NAME for its main revision, and
-- ORG/NAME@REF for each other ref.
local function cache_ids()
  local ids = {}
  for _, repo in ipairs(hf_cache.list()) do
    for ref in pairs(repo.refs) do ids[#ids + 1] = repo.repo .. (ref == "main" and "" or "@" .. ref) end
  end
  table.sort(ids)
  return ids
end

function M.list(data_dir)
  local out = {}
  local function add(id)
    local t = M.describe(id, data_dir)
    if t then out[#out + 1] = t end
  end
  for _, root in ipairs{bundled_root(), data_dir and data_dir .. "/models"} do
    for _, id in ipairs(root and fb.fs.list(root) or {}) do
      if fb.fs.mode(root .. "/" .. id .. "/config.json") then add(id) end
    end
  end
  for _, id in ipairs(cache_ids()) do add(id) end
  return out
end

-- remove(id, data_dir) -> true | nil, err: a pulled model leaves the cache (every revision of
-- its repository); bundled models stay.
function M.remove(id, data_dir)
  local t, err = M.describe(id, data_dir)
  if not t then return nil, err end
  if t.source == "bundled" then return nil, ("%s is bundled with fastbrain: it stays"):format(id) end
  if t.source == "data" then return fb.fs.remove_tree(t.dir) end
  local repo = hf_cache.parse_ref(id).repo
  local ok, rm_err = fb.fs.remove_tree(hf_cache.repo_dir(hf_cache.root(), repo))
  if not ok then return nil, rm_err end
  -- huggingface_hub's download locks of its blobs, when a pull left any
  local locks = hf_cache.root() .. "/.locks/" .. hf_cache.repo_dir("", repo):sub(2)
  if fb.fs.mode(locks) then return fb.fs.remove_tree(locks) end
  return true
end

-- ---- fastbrain models ----

local usage = [[
usage: fastbrain models [--json] [--data-dir DIR]

List the base models one can train on: the bundled ones, the data directory's own (DIR/models;
default ./fastbrain-data or $FASTBRAIN_HOME), and the Hugging Face cache's ($HF_HUB_CACHE, else
$HF_HOME/hub, else ~/.cache/huggingface/hub), with whether this engine runs each.
]]

local function size_text(bytes)
  if bytes >= 2 ^ 30 then return ("%.1f GB"):format(bytes / 2 ^ 30) end
  return ("%.1f MB"):format(bytes / 2 ^ 20)
end

local function params_text(n)
  if not n then return "?" end
  if n >= 1e9 then return ("%.1fB"):format(n / 1e9) end
  return (n >= 1e7 and "%.0fM" or "%.1fM"):format(n / 1e6)
end

function M.main(args)
  local json, data_dir = false, os.getenv("FASTBRAIN_HOME") or "fastbrain-data"
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then io.stdout:write(usage); return 0 end
    if a == "--json" then
      json = true
    elseif a == "--data-dir" and args[i + 1] then
      data_dir, i = args[i + 1], i + 1
    else
      io.stderr:write("fastbrain models: unknown option ", a, "\n", usage)
      return 2
    end
    i = i + 1
  end
  local list = M.list(data_dir)
  if json then
    io.stdout:write(fb.json.encode(fb.json.array(list)), "\n")
    return 0
  end
  io.stdout:write(("%-40s %-8s %-19s %7s %6s %8s %9s  %s\n"):format(
    "MODEL", "SOURCE", "ARCHITECTURE", "PARAMS", "DTYPE", "CONTEXT", "SIZE", "TEMPLATE"))
  for _, t in ipairs(list) do
    io.stdout:write(("%-40s %-8s %-19s %7s %6s %8s %9s  %s\n"):format(
      t.id, t.source, t.architecture or "?", params_text(t.parameters), t.dtype or "?",
      t.context or "?", size_text(t.bytes), t.template or "?"))
    if not t.supported then io.stdout:write("  not supported: ", t.reason, "\n") end
  end
  return 0
end

return M
