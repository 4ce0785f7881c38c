-- fastbrain.hub: models from the Hugging Face Hub (or a mirror) into the Hugging Face cache
-- (fastbrain.hf_cache writes the layout). The Hub's protocol, as huggingface_hub speaks it:
--   1. GET {endpoint}/api/models/{repo}/revision/{rev} -> the commit (sha) and siblings[].rfilename
--   2. only what the engine reads is chosen (WANTED, weights per pick_weights); pickles never;
--      config.json comes first and a repo the engine cannot run is refused before any weight
--   3. HEAD {endpoint}/{repo}/resolve/{commit}/{file}, following relative redirects only: the
--      commit (X-Repo-Commit), the ETag (X-Linked-Etag, else ETag), the size (X-Linked-Size,
--      else Content-Length) and where the bytes are (Location: a CDN, another host)
--   4. GET that location into blobs/<etag>.incomplete, from its size on (Range: bytes=N-, 206),
--      following redirects (Authorization only sent to the endpoint's own host); verified
--      (LFS: sha256 = X-Linked-Etag and X-Linked-Size; others: git blob sha1 = ETag and size)
--      while it streams, then renamed to blobs/<etag> and linked from snapshots/<commit>/
--   5. refs/<rev> = commit once every file is there
-- 5xx answers and dropped connections are retried with backoff; a drop mid-file resumes.
--
-- The API (for the CLI, fastbrain.pull, and the server's tasks):
--   pull(spec, opts) -> result | nil, err, code      inside a coroutine (it yields on sockets)
--     spec: "ORG/NAME[@REVISION]" (revision default "main")
--     opts: revision (overrides spec's), token (else $HF_TOKEN, else $HF_HOME/token), endpoint
--           (else $HF_ENDPOINT, else https://huggingface.co), root (the cache; else
--           hf_cache.root()), offline (else $HF_HUB_OFFLINE=1), on_event(ev) (see below),
--           cancelled() -> true to stop (checked between chunks: the .incomplete stays),
--           tries (4), backoff_ms (500, doubled each retry, at most 8 s), timeout (ms per
--           request head, 60 s), idle_timeout (ms without data, 30 s), tls ({verify, cafile}),
--           getenv (os.getenv)
--     result: {repo, revision, commit, snapshot (dir), files = {{name, size, etag, downloaded}},
--              downloaded_bytes, total_bytes}
--     code: "bad_request" (spec), "offline", "not_found", "gated" (401/403), "unsupported" (no
--           safetensors, an architecture the engine lacks), "network" (after the retries),
--           "verify" (sha256/size mismatch: the bad blob is deleted), "cancelled", "io"
--   Events, in order: start {repo, revision, commit, files = {{name, size, cached}},
--   total_bytes, cached_bytes}; per file: file_start {file, size, resume_from}, progress {file,
--   bytes, size, done_bytes, total_bytes, bytes_per_s, eta_s} (at most every 250 ms and at a
--   file's end), retry {file, attempt, wait_ms, reason}, file_done {file, size, etag,
--   downloaded}, wait {file, reason} (another download holds the blob's lock: huggingface_hub's
--   .locks/models--ORG--NAME/<etag>.lock); then done {repo, revision, commit, snapshot, downloaded_bytes, total_bytes} or
--   error {message, code}. Offline: start (all cached) and done, or an error.
-- What the cache holds: fastbrain.hf_cache.list(); a model's snapshot offline:
-- fastbrain.model.core.locate.
local fb = require "fastbrain"
local http = require "fastbrain.http_client"
local cache = require "fastbrain.hf_cache"
local digest = require "fastbrain.digest"
local fs = require "fastbrain.fs"
local json = require "fastbrain.json"
local lm = require "fastbrain.model.core"

local M = {
  DEFAULT_ENDPOINT = "https://huggingface.co",
  -- The files the engine reads besides the weights; everything else is left on the Hub.
  WANTED = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json"},
  PICKLES = {"%.bin$", "%.pt$", "%.pth$", "%.ckpt$", "%.pkl$", "%.pickle$"},
  PROGRESS_MS = 250,
  LOCK_POLL_MS = 500,  -- how often a blob another download holds is tried again
  RATE_WINDOW_MS = 5000,
}

local function is_pickle(name)
  for _, p in ipairs(M.PICKLES) do
    if name:lower():find(p) then return true end
  end
  return false
end

-- The weight files to fetch among a repo's top-level names -> list, index name | nil, why.
-- The index (its shards come after it is read) or model.safetensors: what the engine opens.
function M.pick_weights(names)
  local have, safetensors = {}, {}
  for _, n in ipairs(names) do
    have[n] = true
    if n:match("%.safetensors$") and not n:find("/", 1, true) then safetensors[#safetensors + 1] = n end
  end
  if have["model.safetensors.index.json"] then return {}, "model.safetensors.index.json" end
  if have["model.safetensors"] then return {"model.safetensors"} end
  if #safetensors == 0 then
    local pickles = {}
    for _, n in ipairs(names) do
      if is_pickle(n) then pickles[#pickles + 1] = n end
    end
    table.sort(pickles)
    return nil, "has no safetensors weights" .. (#pickles > 0 and " (only pickles: " ..
      table.concat(pickles, ", ") .. ", which fastbrain never loads)" or "")
  end
  table.sort(safetensors)
  return nil, "has no model.safetensors or model.safetensors.index.json (only " ..
    table.concat(safetensors, ", ") .. ")"
end

-- Whether the engine runs the model of the config.json at path -> true | nil, why: the engine's
-- own parser decides (engine/model_config.c: the architecture and every field it reads).
function M.check_config(path)
  local architecture, err = lm.check_config(path)
  if not architecture then return nil, err end
  return true
end

-- Percent-encoding of a path segment (revision: "/" too) as urllib.parse.quote does.
local function quote(s, keep_slash)
  return (s:gsub("[^%w%-%._~" .. (keep_slash and "/" or "") .. "]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

local function host_of(url)
  local u = http.parse_url(url)
  return u and (u.scheme .. "://" .. u.host:lower() .. ":" .. u.port)
end

-- A failure to stop the pull with: {message, code}
local function failure(code, fmt, ...)
  return {message = select("#", ...) > 0 and fmt:format(...) or fmt, code = code}
end

local function gated_message(ctx, status)
  return failure("gated", "%s: %d %s: the model is gated or private. Accept its license on " ..
    "https://huggingface.co/%s (signed in), then set HF_TOKEN (or --token) to an access token " ..
    "of that account%s", ctx.repo, status, status == 401 and "Unauthorized" or "Forbidden", ctx.repo,
    ctx.token and " (the token sent was refused)" or "")
end

-- The Hub's error body, when it sent one: {"error": "..."}, or X-Error-Message.
local function hub_reason(res)
  local msg = res.headers["x-error-message"]
  if not msg and res.body and res.body ~= "" then
    local ok, v = pcall(json.decode, res.body)
    msg = ok and type(v) == "table" and type(v.error) == "string" and v.error or nil
  end
  return msg and (": " .. msg:sub(1, 200)) or ""
end

-- Turn a non-success answer into a failure naming what was missing; nil when it is retryable.
local function classify(ctx, res, what)
  local s = res.status
  if s >= 500 then return nil end
  local code = res.headers["x-error-code"]
  if (s == 401 or s == 404) and code == "RepoNotFound" then  -- the Hub's 401 hides private repos
    return failure("not_found", "repository %s not found on %s%s", ctx.repo, ctx.endpoint,
      s == 401 and " (if it is private, set HF_TOKEN or --token to a token that can read it)" or "")
  end
  if s == 401 or s == 403 then return gated_message(ctx, s) end
  if s == 404 then
    if code == "RevisionNotFound" or (what == "api" and code ~= "RepoNotFound" and ctx.revision ~= "main") then
      return failure("not_found", "revision %s not found in %s%s", ctx.revision, ctx.repo, hub_reason(res))
    end
    if what == "api" or code == "RepoNotFound" then
      return failure("not_found", "repository %s not found on %s%s", ctx.repo, ctx.endpoint, hub_reason(res))
    end
    return failure("not_found", "file %s not found in %s at %s%s", what, ctx.repo, ctx.commit or ctx.revision,
      hub_reason(res))
  end
  return failure("network", "%s: unexpected %d %s from %s", ctx.repo, s, res.reason or "", res.url or "")
end

-- Run attempt() -> value | nil, failure, retryable up to ctx.tries times with backoff.
local function with_retries(ctx, file, attempt)
  local wait = ctx.backoff_ms
  for try = 1, ctx.tries do
    local v, f, retryable = attempt(try)
    if v then return v end
    if not retryable or try == ctx.tries or ctx.is_cancelled() then
      if retryable then f.message = f.message .. string.format(" (gave up after %d tries)", try) end
      return nil, f
    end
    ctx.emit{event = "retry", file = file, attempt = try + 1, wait_ms = wait, reason = f.message}
    fb.sleep(wait)
    if ctx.is_cancelled() then return nil, failure("cancelled", "cancelled") end
    wait = math.min(wait * 2, 8000)
  end
end

local function request(ctx, opts)
  opts.timeout = opts.timeout or ctx.timeout
  opts.idle_timeout = opts.idle_timeout or ctx.idle_timeout
  opts.tls = opts.tls or ctx.tls
  return http.request(opts)
end

local function auth_headers(ctx, url)
  local h = {}
  if ctx.token and host_of(url) == ctx.endpoint_host then h.authorization = "Bearer " .. ctx.token end
  return h
end

-- GET a small JSON document (the API) -> value | nil, failure
local function get_json(ctx, url, what)
  return with_retries(ctx, nil, function()
    local res, err = request(ctx, {url = url, headers = auth_headers(ctx, url), redirects = 5})
    if not res then return nil, failure("network", "%s: %s", ctx.repo, err), true end
    if res.status ~= 200 then
      local f = classify(ctx, res, what)
      if f then return nil, f end
      return nil, failure("network", "%s: %d %s from %s", ctx.repo, res.status, res.reason or "", url), true
    end
    local ok, v = pcall(json.decode, res.body)
    if not ok or type(v) ~= "table" then return nil, failure("network", "%s: %s is not JSON", ctx.repo, url) end
    return v
  end)
end

-- HEAD the resolve URL, following relative redirects (a renamed repo) but not a CDN's.
-- -> {commit, etag, size, lfs, location} | nil, failure
local function file_metadata(ctx, file)
  local url = ("%s/%s/resolve/%s/%s"):format(ctx.endpoint, ctx.repo, ctx.commit, quote(file, true))
  return with_retries(ctx, file, function()
    local target = url
    for _ = 1, 5 do
      local res, err = request(ctx, {url = target, method = "HEAD", headers = auth_headers(ctx, target)})
      if not res then return nil, failure("network", "%s: %s", file, err), true end
      local loc = res.headers.location
      if res.status >= 300 and res.status < 400 and loc and not loc:match("^%a[%w+.-]*://") and loc:sub(1, 2) ~= "//" then
        target = http.resolve_location(http.parse_url(target), loc)
      elseif res.status >= 400 then
        local f = classify(ctx, res, file)
        if f then return nil, f end
        return nil, failure("network", "%s: %d %s", file, res.status, res.reason or ""), true
      else
        local h = res.headers
        local linked = h["x-linked-etag"]
        local meta = {commit = h["x-repo-commit"], etag = cache.normalize_etag(linked or h.etag),
                      size = tonumber(h["x-linked-size"] or h["content-length"] or ""), lfs = linked ~= nil,
                      location = (res.status >= 300 and loc) and http.resolve_location(http.parse_url(target), loc) or target}
        if not meta.etag or not meta.etag:match("^[%w_%-]+$") then
          return nil, failure("network", "%s: the Hub sent no usable ETag for it", file)
        end
        if meta.commit and meta.commit ~= ctx.commit then
          return nil, failure("network", "%s: resolved at commit %s, not %s", file, meta.commit, ctx.commit)
        end
        if not meta.size then return nil, failure("network", "%s: the Hub sent no size for it", file) end
        return meta
      end
    end
    return nil, failure("network", "%s: too many redirects", file)
  end)
end

-- The digest that verifies a blob: sha256 of the bytes for LFS (etag = sha256), else git's blob
-- sha1 ("blob <size>\0" then the bytes) when the etag is one.
local function verifier(meta)
  if meta.lfs and #meta.etag == 64 and meta.etag:match("^%x+$") then return digest.new("sha256"), "sha256" end
  if not meta.lfs and #meta.etag == 40 and meta.etag:match("^%x+$") then
    return digest.new("sha1"):update("blob " .. meta.size .. "\0"), "git sha1"
  end
  return nil
end

-- Feed the first n bytes of path to d (resuming a .incomplete), yielding now and then.
local function hash_prefix(d, path, n)
  local f = io.open(path, "rb")
  if not f then return nil end
  local left, since = n, 0
  while left > 0 do
    local s = f:read(math.min(left, 1 << 20))
    if not s then break end
    d:update(s)
    left, since = left - #s, since + #s
    if since >= (64 << 20) and coroutine.isyieldable() then fb.sleep(0); since = 0 end
  end
  f:close()
  return left == 0
end

local function progress(ctx, file, got, size, force)
  local now = fb.now()
  if not force and now - ctx.last_progress < M.PROGRESS_MS then return end
  ctx.last_progress = now
  -- The rate over the last RATE_WINDOW_MS: what the line is doing now, not since the start.
  local samples = ctx.samples
  samples[#samples + 1] = {now, ctx.downloaded}
  while #samples > 2 and now - samples[1][1] > M.RATE_WINDOW_MS do table.remove(samples, 1) end
  local first = #samples > 1 and samples[1] or {ctx.started, 0}
  local elapsed = (now - first[1]) / 1000
  local rate = elapsed > 0 and (ctx.downloaded - first[2]) / elapsed or 0
  local left = ctx.total_bytes - ctx.done_bytes
  ctx.emit{event = "progress", file = file, bytes = got, size = size, done_bytes = ctx.done_bytes,
           total_bytes = ctx.total_bytes, bytes_per_s = math.floor(rate),
           eta_s = rate > 0 and math.floor(left / rate + 0.5) or -1}
end

-- huggingface_hub's lock on a blob (.locks/models--ORG--NAME/<etag>.lock, flock as Python's
-- filelock takes it), waited for without blocking the loop -> lock | nil, failure
local function lock_blob(ctx, file, etag)
  local dir = ctx.root .. "/.locks/" .. ctx.dir:match("[^/]+$")
  local ok, err = fs.mkdir_p(dir)
  if not ok then return nil, failure("io", err) end
  local told = false
  while true do
    local lock, lerr, busy = fs.lock(dir .. "/" .. etag .. ".lock")
    if lock then return lock end
    if busy ~= "busy" then return nil, failure("io", lerr) end
    if not told then
      ctx.emit{event = "wait", file = file, reason = lerr}
      told = true
    end
    if ctx.is_cancelled() then return nil, failure("cancelled", "cancelled") end
    fb.sleep(M.LOCK_POLL_MS)
  end
end

-- Download one blob into blobs/<etag> through .incomplete, under its lock -> true, moved (false
-- when another download finished it meanwhile) | nil, failure
local function download(ctx, file, meta)
  local blob = cache.blob_path(ctx.dir, meta.etag)
  local part = blob .. ".incomplete"
  local ok, err = fs.mkdir_p(ctx.dir .. "/blobs")
  if not ok then return nil, failure("io", err) end
  local lock <close>, lerr = lock_blob(ctx, file, meta.etag)
  if not lock then return nil, lerr end
  local done = fs.stat(blob)
  if done and done.size == meta.size then
    ctx.done_bytes = ctx.done_bytes + meta.size
    return true, false
  end
  local st = fs.stat(part)
  local have = st and st.size or 0
  if have > meta.size then have = 0 end
  local d, kind = verifier(meta)
  if have > 0 and d and not hash_prefix(d, part, have) then have, d, kind = 0, verifier(meta) end
  local f = io.open(part, have > 0 and "ab" or "wb")
  if not f then return nil, failure("io", "cannot write %s", part) end
  local _ <close> = setmetatable({}, {__close = function()  -- a cancelled coroutine closes it too
    if io.type(f) == "file" then f:close() end
  end})
  ctx.emit{event = "file_start", file = file, size = meta.size, resume_from = have}
  ctx.done_bytes = ctx.done_bytes + have
  local function restart()  -- the server ignored Range: from the start again
    ctx.done_bytes = ctx.done_bytes - have
    have = 0
    f:close()
    f = assert(io.open(part, "wb"))
    d, kind = verifier(meta)
  end
  local got_any
  ok, err = with_retries(ctx, file, function()
    if have == meta.size then return true end
    local url = meta.location
    local headers = auth_headers(ctx, url)
    if have > 0 then headers.range = ("bytes=%d-"):format(have) end
    local answer
    local res, rerr, stopped = request(ctx, {url = url, headers = headers, redirects = 5, stream = function(r)
      if r.status == 200 and have > 0 then restart() end
      if r.status == 206 then
        local from = tonumber((r.headers["content-range"] or ""):match("^bytes (%d+)%-"))
        if from ~= have then
          answer = "a range from " .. tostring(from) .. ", not " .. have
          return function() return nil, answer end
        end
      elseif r.status ~= 200 then
        return nil
      end
      got_any = true
      return function(chunk)
        if ctx.is_cancelled() then return nil, "cancelled" end
        if have + #chunk > meta.size then return nil, "more bytes than the announced " .. meta.size end
        local wok, werr = f:write(chunk)
        if not wok then return nil, "writing " .. part .. ": " .. tostring(werr) end
        if d then d:update(chunk) end
        have = have + #chunk
        ctx.done_bytes, ctx.downloaded = ctx.done_bytes + #chunk, ctx.downloaded + #chunk
        progress(ctx, file, have, meta.size)
        return true
      end
    end})
    f:flush()
    if answer then
      restart()
      return nil, failure("network", "%s: the server sent %s", file, answer), true
    end
    if not res then
      if stopped and rerr:find("cancelled$") then return nil, failure("cancelled", "cancelled") end
      if stopped and not rerr:find("more bytes", 1, true) then return nil, failure("io", rerr) end
      return nil, failure("network", "%s: %s", file, rerr), not stopped
    end
    if res.status == 416 and have > 0 then restart(); return nil, failure("network", "%s: range refused", file), true end
    if res.status ~= 200 and res.status ~= 206 then
      local fl = classify(ctx, res, file)
      if fl then return nil, fl end
      return nil, failure("network", "%s: %d %s", file, res.status, res.reason or ""), true
    end
    if have < meta.size then
      return nil, failure("network", "%s: the body ended at %d of %d bytes", file, have, meta.size), true
    end
    return true
  end)
  if not ok then
    if err.code == "cancelled" or err.code == "network" then return nil, err end  -- resumable
    f:close()
    if err.code ~= "io" then os.remove(part) end
    return nil, err
  end
  f:close()
  if got_any then progress(ctx, file, have, meta.size, true) end
  local sum = d and d:hex()
  if sum and sum ~= meta.etag then
    os.remove(part)
    return nil, failure("verify", "%s: %s %s does not match the Hub's %s: the download was deleted", file, kind, sum, meta.etag)
  end
  local rok, rerr = os.rename(part, blob)
  if not rok then return nil, failure("io", "%s", rerr) end
  return true, true
end

-- Fetch file into the snapshot (unless it is there) -> {name, size, etag, downloaded} | nil, failure
local function fetch(ctx, file, meta)
  meta = meta or ctx.meta[file]
  if not meta then
    local etag, size = cache.linked(ctx.dir, ctx.commit, file)
    if etag and etag ~= "" then
      meta = {etag = etag, size = size, cached = true}
    else
      local m, f = file_metadata(ctx, file)
      if not m then return nil, f end
      meta = m
    end
  end
  local downloaded = false
  if not meta.cached then
    local st = fs.stat(cache.blob_path(ctx.dir, meta.etag))
    if not st or st.size ~= meta.size then
      local ok, moved = download(ctx, file, meta)
      if not ok then return nil, moved end
      downloaded = moved
    else
      ctx.done_bytes = ctx.done_bytes + meta.size
    end
    local ok, err = cache.link(ctx.dir, ctx.commit, file, meta.etag)
    if not ok then return nil, failure("io", err) end
  else
    ctx.done_bytes = ctx.done_bytes + meta.size
  end
  ctx.emit{event = "file_done", file = file, size = meta.size, etag = meta.etag, downloaded = downloaded}
  return {name = file, size = meta.size, etag = meta.etag, downloaded = downloaded}
end

local function read_snapshot_json(ctx, file)
  local path = cache.snapshot_dir(ctx.dir, ctx.commit) .. "/" .. file
  local f = io.open(path, "rb")
  local text = f and f:read("a")
  if f then f:close() end
  local ok, v = pcall(json.decode, text or "")
  if not ok or type(v) ~= "table" then return nil, failure("unsupported", "%s: %s is not JSON", ctx.repo, file) end
  return v
end

local function read_token(getenv)
  local t = getenv("HF_TOKEN")
  if t and t ~= "" then return t end
  local home = getenv("HF_HOME")
  local path = home and home ~= "" and home .. "/token" or (getenv("HOME") or "") .. "/.cache/huggingface/token"
  local f = io.open(path, "rb")
  if not f then return nil end
  t = f:read("a"):match("^%s*(%S+)%s*$")
  f:close()
  return t
end

local OPTIONS = {revision = "string", token = "string", endpoint = "string", root = "string",
                 offline = "boolean", on_event = "function", cancelled = "function", tries = "number",
                 backoff_ms = "number", timeout = "number", idle_timeout = "number", tls = "table",
                 getenv = "function"}

local function offline_pull(ctx)
  local commit = cache.read_ref(ctx.dir, ctx.revision)
  if not commit then
    return nil, failure("offline", "%s@%s is not in the cache (%s) and HF_HUB_OFFLINE=1: pull it once online",
      ctx.repo, ctx.revision, ctx.root)
  end
  local ok, missing = cache.complete(ctx.dir, commit)
  if not ok then
    return nil, failure("offline", "%s@%s (%s) lacks %s in the cache and HF_HUB_OFFLINE=1: pull it online to finish",
      ctx.repo, ctx.revision, commit, missing)
  end
  ctx.commit = commit
  local files, total = {}, 0
  for _, name in ipairs(fs.list(cache.snapshot_dir(ctx.dir, commit)) or {}) do
    local etag, size = cache.linked(ctx.dir, commit, name)
    if etag then
      files[#files + 1] = {name = name, size = size, etag = etag, downloaded = false}
      total = total + size
    end
  end
  local listed = {}
  for i, f in ipairs(files) do listed[i] = {name = f.name, size = f.size, cached = true} end
  ctx.emit{event = "start", repo = ctx.repo, revision = ctx.revision, commit = commit, files = listed,
           total_bytes = total, cached_bytes = total, offline = true}
  return {files = files, total_bytes = total, downloaded_bytes = 0}
end

local function online_pull(ctx)
  local info, f = get_json(ctx, ("%s/api/models/%s/revision/%s"):format(ctx.endpoint, ctx.repo, quote(ctx.revision)), "api")
  if not info then return nil, f end
  if type(info.sha) ~= "string" or not cache.is_commit(info.sha) then
    return nil, failure("network", "%s@%s: the Hub's answer has no commit sha", ctx.repo, ctx.revision)
  end
  ctx.commit = info.sha
  local names = {}
  for _, s in ipairs(type(info.siblings) == "table" and info.siblings or {}) do
    if type(s) == "table" and type(s.rfilename) == "string" then names[#names + 1] = s.rfilename end
  end
  local have = {}
  for _, n in ipairs(names) do have[n] = true end
  -- Refuse what the engine cannot run before any weight moves: no safetensors, no config.json,
  -- an architecture it lacks (config.json is fetched first).
  local weights, why = M.pick_weights(names)
  if not weights then return nil, failure("unsupported", "%s@%s %s", ctx.repo, ctx.revision, why) end
  if not have["config.json"] then
    return nil, failure("unsupported", "%s@%s has no config.json", ctx.repo, ctx.revision)
  end
  local results = {}
  local r, ferr = fetch(ctx, "config.json")
  if not r then return nil, ferr end
  results[#results + 1] = r
  local config_ok, config_why = M.check_config(cache.snapshot_dir(ctx.dir, ctx.commit) .. "/config.json")
  if not config_ok then return nil, failure("unsupported", "%s@%s: %s", ctx.repo, ctx.revision, config_why) end
  if why == "model.safetensors.index.json" then  -- the index, then the shards it names
    r, ferr = fetch(ctx, why)
    if not r then return nil, ferr end
    results[#results + 1] = r
    local index, ierr = read_snapshot_json(ctx, why)
    if not index then return nil, ierr end
    local shards, seen = {}, {}
    for _, shard in pairs(type(index.weight_map) == "table" and index.weight_map or {}) do
      if type(shard) ~= "string" or not shard:match("^[%w_.%-]+%.safetensors$") then
        return nil, failure("unsupported", "%s: %s names %s, not a safetensors file beside it", ctx.repo, why, tostring(shard))
      end
      if not seen[shard] then
        if not have[shard] then
          return nil, failure("not_found", "file %s (named by %s) not found in %s at %s", shard, why, ctx.repo, ctx.commit)
        end
        seen[shard] = true
        shards[#shards + 1] = shard
      end
    end
    if #shards == 0 then return nil, failure("unsupported", "%s: %s names no shard", ctx.repo, why) end
    table.sort(shards)
    weights = shards
  end
  local rest = {}
  for _, n in ipairs(M.WANTED) do
    if have[n] and n ~= "config.json" then rest[#rest + 1] = n end
  end
  for _, n in ipairs(weights) do rest[#rest + 1] = n end
  -- What is already in the snapshot needs no request; the rest gets its metadata first, so
  -- start can say how many bytes are coming.
  local listed, cached_bytes, total = {}, 0, 0
  for _, e in ipairs(results) do
    listed[#listed + 1] = {name = e.name, size = e.size, cached = not e.downloaded}
    total = total + e.size
  end
  local todo = {}
  for _, n in ipairs(rest) do
    local etag, size = cache.linked(ctx.dir, ctx.commit, n)
    if etag then
      listed[#listed + 1] = {name = n, size = size, cached = true}
      cached_bytes, total = cached_bytes + size, total + size
      ctx.meta[n] = {etag = etag, size = size, cached = true}
    else
      local meta, merr = file_metadata(ctx, n)
      if not meta then return nil, merr end
      ctx.meta[n] = meta
      local st = fs.stat(cache.blob_path(ctx.dir, meta.etag))
      local cached = st ~= nil and st.size == meta.size
      listed[#listed + 1] = {name = n, size = meta.size, cached = cached}
      total = total + meta.size
      if cached then cached_bytes = cached_bytes + meta.size end
    end
    todo[#todo + 1] = n
  end
  for _, e in ipairs(results) do cached_bytes = cached_bytes + (e.downloaded and 0 or e.size) end
  ctx.total_bytes = total
  ctx.emit{event = "start", repo = ctx.repo, revision = ctx.revision, commit = ctx.commit, files = listed,
           total_bytes = total, cached_bytes = cached_bytes}
  ctx.prestart = false
  for _, e in ipairs(results) do  -- config.json and the index, fetched before start
    ctx.emit{event = "file_done", file = e.name, size = e.size, etag = e.etag, downloaded = e.downloaded}
  end
  for _, n in ipairs(todo) do
    if ctx.is_cancelled() then return nil, failure("cancelled", "cancelled") end
    r, ferr = fetch(ctx, n, ctx.meta[n])
    if not r then return nil, ferr end
    results[#results + 1] = r
  end
  local ok, err = cache.write_ref(ctx.dir, ctx.revision, ctx.commit)
  if not ok then return nil, failure("io", err) end
  local downloaded = 0
  for _, e in ipairs(results) do
    if e.downloaded then downloaded = downloaded + e.size end
  end
  return {files = results, total_bytes = total, downloaded_bytes = downloaded}
end

function M.pull(spec, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("hub.pull: options table expected", 2) end
  for k, v in pairs(opts) do
    if not OPTIONS[k] then error(string.format("hub.pull: unknown option %q", tostring(k)), 2) end
    if type(v) ~= OPTIONS[k] then error(string.format("hub.pull: opts.%s must be a %s", k, OPTIONS[k]), 2) end
  end
  local on_event = opts.on_event or function() end
  local ctx
  local quiet = {file_start = true, progress = true, file_done = true}
  local function emit(ev)
    if ctx and ctx.prestart and quiet[ev.event] then return end  -- before start: config, index
    local ok, err = pcall(on_event, ev)
    if not ok then fb.log.error("hub.pull: on_event: %s", tostring(err)) end
  end
  local ref, perr = cache.parse_ref(spec)
  if not ref then
    emit{event = "error", message = perr, code = "bad_request"}
    return nil, perr, "bad_request"
  end
  local getenv = opts.getenv or os.getenv
  local endpoint = opts.endpoint or getenv("HF_ENDPOINT")
  endpoint = (endpoint ~= nil and endpoint ~= "" and endpoint or M.DEFAULT_ENDPOINT):gsub("/+$", "")
  local offline = opts.offline
  if offline == nil then
    local v = (getenv("HF_HUB_OFFLINE") or ""):lower()
    offline = v == "1" or v == "true" or v == "yes" or v == "on"
  end
  local root = opts.root or cache.root()
  local token = opts.token or read_token(getenv)
  ctx = {repo = ref.repo, prestart = true, revision = opts.revision or ref.revision, endpoint = endpoint,
               endpoint_host = host_of(endpoint), token = token, root = root,
               dir = cache.repo_dir(root, ref.repo), tries = opts.tries or 4, backoff_ms = opts.backoff_ms or 500,
               timeout = opts.timeout, idle_timeout = opts.idle_timeout, tls = opts.tls, emit = emit,
               is_cancelled = opts.cancelled or function() return false end, meta = {},
               started = fb.now(), last_progress = -math.huge, samples = {}, done_bytes = 0, downloaded = 0, total_bytes = 0}
  if not offline and not ctx.endpoint_host then
    local msg = "HF_ENDPOINT is not an http(s) URL: " .. endpoint
    emit{event = "error", message = msg, code = "bad_request"}
    return nil, msg, "bad_request"
  end
  local result, f
  if offline then result, f = offline_pull(ctx) else result, f = online_pull(ctx) end
  if not result then
    emit{event = "error", message = f.message, code = f.code}
    return nil, f.message, f.code
  end
  result.repo, result.revision, result.commit = ctx.repo, ctx.revision, ctx.commit
  result.snapshot = cache.snapshot_dir(ctx.dir, ctx.commit)
  emit{event = "done", repo = ctx.repo, revision = ctx.revision, commit = ctx.commit, snapshot = result.snapshot,
       downloaded_bytes = result.downloaded_bytes, total_bytes = result.total_bytes}
  return result
end

return M
