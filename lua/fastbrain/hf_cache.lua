-- fastbrain.hf_cache: the Hugging Face cache on disk, in huggingface_hub's own layout
-- (file_download.py), so models fetched by other tools are found here and ours by them. It
-- reads and writes the layout; it never touches the network (fastbrain.hub does).
--
--   <root>/models--ORG--NAME/
--     blobs/<etag>               a file's bytes, named by its normalized ETag (sha256 for LFS
--                                files, git blob sha1 for the others)
--     blobs/<etag>.incomplete    a download in progress, resumed from its size
--     snapshots/<commit>/<file>  relative symlink ../../blobs/<etag>
--     refs/<revision>            the commit a branch or tag named, no newline
--
--   root() -> $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
--             ~/.cache/huggingface/hub
--   parse_ref("ORG/NAME[@REVISION]") -> {repo =, revision = (default "main")} | nil, err
--   repo_dir(root, repo), blob_path(dir, etag), snapshot_dir(dir, commit)
--   normalize_etag(etag), read_ref(dir, revision), write_ref(dir, revision, commit)
--   link(dir, commit, file, etag) -> path | nil, err     (replaces what was there)
--   linked(dir, commit, file) -> etag, size | nil        (a file there, through its link)
--   complete(dir, commit) -> true | nil, what is missing  (config.json and every weight file)
--   list([root]) -> repos: {{repo, dir, size, refs = {rev = commit}, snapshots = {{commit,
--                   refs = {rev...}, complete, files = {{name, size, etag}}}}, incomplete =
--                   {{etag, size}}}}, sorted by repo then commit
local fs = require "fastbrain.fs"
local lm = require "fastbrain.model.core"
local json = require "fastbrain.json"

local M = {}

-- The cache root: $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
-- ~/.cache/huggingface/hub, as huggingface_hub reads them (engine/hf_cache.c, which loads from it).
function M.root() return lm.cache_root() end

-- ORG/NAME[@REVISION] -> {repo, revision} | nil, err: a repository id as the Hub allows it
-- (validate_repo_id's rules; engine/hf_cache.c).
function M.parse_ref(spec)
  local repo, revision
  if type(spec) == "string" then repo, revision = lm.parse_ref(spec) end
  if not repo then
    return nil, string.format("%s is not a model name: expected ORG/NAME[@REVISION]",
                              type(spec) == "string" and ("%q"):format(spec) or "it")
  end
  return {repo = repo, revision = revision}
end

function M.is_commit(revision) return #revision == 40 and revision:match("^%x+$") ~= nil end

function M.repo_dir(root, repo) return root .. "/models--" .. repo:gsub("/", "--") end

-- huggingface_hub's _normalize_etag: a weak validator's W/ and the quotes go.
function M.normalize_etag(etag)
  if not etag then return nil end
  return (etag:gsub("^W/", ""):gsub('^"', ""):gsub('"$', ""))
end

function M.blob_path(dir, etag) return dir .. "/blobs/" .. etag end
function M.snapshot_dir(dir, commit) return dir .. "/snapshots/" .. commit end

-- The commit a revision names: itself for a commit, else refs/<revision> when cached.
function M.read_ref(dir, revision)
  if M.is_commit(revision) then return revision end
  local s = fs.read(dir .. "/refs/" .. revision)
  s = s and s:match("^%s*(%x+)%s*$")
  return s and #s == 40 and s or nil
end

-- Write refs/<revision> (not for a commit; only when it changes, as huggingface_hub does).
function M.write_ref(dir, revision, commit)
  if revision == commit then return true end
  local path = dir .. "/refs/" .. revision
  if fs.read(path) == commit then return true end
  local ok, err = fs.mkdir_p(path:match("^(.*)/[^/]+$"))
  if not ok then return nil, err end
  return fs.write_atomic(path, commit)
end

-- snapshots/<commit>/<file> -> ../../blobs/<etag> (one more ../ per folder in file).
function M.link(dir, commit, file, etag)
  local path = M.snapshot_dir(dir, commit) .. "/" .. file
  local ok, err = fs.mkdir_p(path:match("^(.*)/[^/]+$"))
  if not ok then return nil, err end
  local _, depth = file:gsub("/", "")
  local target = string.rep("../", 2 + depth) .. "blobs/" .. etag
  os.remove(path)
  ok, err = fs.symlink(target, path)
  if not ok then return nil, err end
  return path
end

-- The etag and size behind snapshots/<commit>/<file> when it is a link that resolves to a blob.
function M.linked(dir, commit, file)
  local path = M.snapshot_dir(dir, commit) .. "/" .. file
  local st = fs.stat(path)
  if not st or st.type ~= "file" then return nil end
  local target = fs.readlink(path)  -- a plain file (a cache made without symlinks) counts too
  return target and target:match("([^/]+)$") or "", st.size
end

-- Whether snapshots/<commit> holds what the engine reads: config.json and the weights
-- (model.safetensors, or the index and every shard it names), each resolving to a blob.
function M.complete(dir, commit)
  if not M.linked(dir, commit, "config.json") then return nil, "config.json" end
  local snap = M.snapshot_dir(dir, commit)
  if M.linked(dir, commit, "model.safetensors.index.json") then
    local ok, index = pcall(json.decode, fs.read(snap .. "/model.safetensors.index.json") or "")
    if not ok or type(index) ~= "table" or type(index.weight_map) ~= "table" then
      return nil, "a readable model.safetensors.index.json"
    end
    for _, shard in pairs(index.weight_map) do
      if type(shard) ~= "string" or not M.linked(dir, commit, shard) then return nil, tostring(shard) end
    end
    return true
  end
  if not M.linked(dir, commit, "model.safetensors") then return nil, "model.safetensors" end
  return true
end

-- Every file under a snapshot folder, as paths relative to it.
local function walk(base, rel, out)
  for _, name in ipairs(fs.list(base .. (rel ~= "" and "/" .. rel or "")) or {}) do
    local r = rel ~= "" and rel .. "/" .. name or name
    local st = fs.lstat(base .. "/" .. r)
    if st and st.type == "dir" then walk(base, r, out) else out[#out + 1] = r end
  end
  return out
end

local function list_refs(dir, prefix, out)
  for _, name in ipairs(fs.list(dir .. "/refs" .. prefix) or {}) do
    local rel = prefix .. "/" .. name
    local st = fs.stat(dir .. "/refs" .. rel)
    if st and st.type == "dir" then list_refs(dir, rel, out)
    elseif st then out[rel:sub(2)] = M.read_ref(dir, rel:sub(2)) end
  end
  return out
end

function M.list(root)
  root = root or M.root()
  local repos = {}
  for _, entry in ipairs(fs.list(root) or {}) do
    local org_name = entry:match("^models%-%-(.+)$")
    local org, name = (org_name or ""):match("^(.-)%-%-(.+)$")
    if org then
      local dir = root .. "/" .. entry
      local repo = {repo = org .. "/" .. name, dir = dir, size = 0, refs = list_refs(dir, "", {}),
                    snapshots = {}, incomplete = {}}
      for _, blob in ipairs(fs.list(dir .. "/blobs") or {}) do
        local st = fs.stat(dir .. "/blobs/" .. blob)
        if st then
          repo.size = repo.size + st.size
          local etag = blob:match("^(.+)%.incomplete$")
          if etag then repo.incomplete[#repo.incomplete + 1] = {etag = etag, size = st.size} end
        end
      end
      for _, commit in ipairs(fs.list(dir .. "/snapshots") or {}) do
        local snap = {commit = commit, refs = {}, files = {}, complete = M.complete(dir, commit) or false}
        for rev, c in pairs(repo.refs) do
          if c == commit then snap.refs[#snap.refs + 1] = rev end
        end
        table.sort(snap.refs)
        for _, file in ipairs(walk(M.snapshot_dir(dir, commit), "", {})) do
          local etag, size = M.linked(dir, commit, file)
          snap.files[#snap.files + 1] = {name = file, etag = etag, size = size}
        end
        repo.snapshots[#repo.snapshots + 1] = snap
      end
      repos[#repos + 1] = repo
    end
  end
  table.sort(repos, function(a, b) return a.repo < b.repo end)
  return repos
end

return M
