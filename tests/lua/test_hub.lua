-- fastbrain.hub and fastbrain.hf_cache against a local stand-in of the Hugging Face Hub
-- (tests/lua/hub_standin.lua): the cache layout exactly, redirects to a second path and to
-- another host, a cut connection resumed with Range, a cancelled pull resumed, gated repos,
-- a wrong sha256, repos refused before any large download, 404s, retries, offline mode, and
-- the cache listing.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local fs = require "fastbrain.fs"
local hub = require "fastbrain.hub"
local cache = require "fastbrain.hf_cache"
local digest = require "fastbrain.digest"
local standin = require "tests.lua.hub_standin"

local srv = standin.start()
local root = os.tmpname()
os.remove(root)
root = root .. "-hf/hub"
assert(fs.mkdir_p(root))

local C1 = string.rep("a1", 20)
local FILES = standin.llama_files()
srv:add_repo("org/llama", {commit = C1, files = FILES})
local SHARD1, SHARD2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
local WANTED = {"config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors", "model.safetensors.index.json", "special_tokens_map.json",
                "tokenizer.json", "tokenizer_config.json"}

local function data_of(files, name)
  local f = files[name]
  return type(f) == "table" and f.data or f
end

-- pull(spec [, extra opts]) on the stand-in with this test's cache and environment; the events.
local env = {}
local function pull(spec, extra)
  local events = {}
  local opts = {endpoint = srv.endpoint, root = root, backoff_ms = 5, getenv = function(k) return env[k] end,
                on_event = function(ev) events[#events + 1] = ev end}
  for k, v in pairs(extra or {}) do opts[k] = v end
  local res, err, code = hub.pull(spec, opts)
  return res, err, code, events
end

local function async(name, fn, timeout)
  T.test(name, function(done)
    srv:reset()
    env = {}
    fb.spawn(T.guard(done, function() fn(); done() end))
  end, {timeout = timeout or 20000})
end

local function esc(s) return (s:gsub("%p", "%%%0")) end

local function by_event(events, name)
  local out = {}
  for _, ev in ipairs(events) do
    if ev.event == name then out[#out + 1] = ev end
  end
  return out
end

-- The snapshot of repo at commit holds exactly names, each a relative link to blobs/<etag>
-- (git sha1 for small files, sha256 for LFS ones) that reads back as the stand-in's bytes.
local function check_snapshot(repo, commit, files, names)
  local dir = cache.repo_dir(root, repo)
  local snap = dir .. "/snapshots/" .. commit
  T.eq(fs.list(snap), names, "snapshot files")
  local blobs = {}
  for _, name in ipairs(names) do
    local f, data = files[name], data_of(files, name)
    local etag = type(f) == "table" and f.lfs and digest.sha256(data) or standin.git_sha1(data)
    T.eq(fs.readlink(snap .. "/" .. name), "../../blobs/" .. etag, name .. " link")
    T.eq(fs.lstat(snap .. "/" .. name).type, "link")
    T.eq(fs.read(snap .. "/" .. name) == data, true, name .. " reads back byte for byte")
    blobs[#blobs + 1] = etag
  end
  table.sort(blobs)
  local unique = {}
  for _, b in ipairs(blobs) do
    if unique[#unique] ~= b then unique[#unique + 1] = b end  -- equal files share a blob
  end
  return unique
end

T.test("parse_ref, normalize_etag, root", function()
  T.eq(cache.parse_ref("Qwen/Qwen2.5-0.5B"), {repo = "Qwen/Qwen2.5-0.5B", revision = "main"})
  T.eq(cache.parse_ref("org/m_1.x@v1.0"), {repo = "org/m_1.x", revision = "v1.0"})
  T.eq(cache.parse_ref("org/m@refs/pr/1").revision, "refs/pr/1")
  for _, bad in ipairs({"llama", "a/b/c", "../x/y", "org/..", "org/a--b", "org/m@../x", "org/m@", "/m"}) do
    T.eq(cache.parse_ref(bad), nil, bad)
  end
  T.eq(cache.normalize_etag('"abc123"'), "abc123")
  T.eq(cache.normalize_etag('W/"abc123"'), "abc123")
  T.eq(cache.normalize_etag("abc123"), "abc123")
  T.eq(cache.repo_dir("/r", "Qwen/Qwen2.5-0.5B"), "/r/models--Qwen--Qwen2.5-0.5B")
end)

T.test("pick_weights and check_config", function()
  T.eq({hub.pick_weights({"config.json", "model.safetensors"})}, {{"model.safetensors"}})
  T.eq(select(2, hub.pick_weights({"model.safetensors.index.json", "a.safetensors"})), "model.safetensors.index.json")
  T.matches(select(2, hub.pick_weights({"config.json", "pytorch_model.bin"})), "only pickles: pytorch_model.bin")
  T.matches(select(2, hub.pick_weights({"consolidated.safetensors"})), "no model.safetensors or")
  T.eq(hub.check_config(fb.root .. "/share/models/tiny/config.json"), true)
end)

async("a sharded model: the cache layout exactly, no pickle, redirects to a path and a host", function()
  local res, err, _, events = pull("org/llama")
  T.eq(err, nil)
  local dir = cache.repo_dir(root, "org/llama")
  T.eq(res.commit, C1)
  T.eq(res.snapshot, dir .. "/snapshots/" .. C1)
  T.eq(fs.read(dir .. "/refs/main"), C1, "refs/main holds the commit, no newline")
  T.eq(fs.list(dir), {"blobs", "refs", "snapshots"})
  local blobs = check_snapshot("org/llama", C1, FILES, WANTED)
  T.eq(fs.list(dir .. "/blobs"), blobs, "blobs named by etag, nothing else (no .incomplete)")
  T.eq(srv:count("pytorch_model"), 0, "the pickle never requested")
  T.eq(srv:count("README"), 0, "README not requested")
  T.eq(srv:count("^/cdn/" .. digest.sha256(FILES[SHARD1].data)), 1, "shard 1 through the second path")
  local cdn = 0
  for _, r in ipairs(srv.requests) do
    if r.where == "cdn" then cdn = cdn + 1; T.eq(r.path, "/blob/" .. digest.sha256(FILES[SHARD2].data)) end
  end
  T.eq(cdn, 1, "shard 2 from the other host")
  local total = 0
  for _, n in ipairs(WANTED) do total = total + #data_of(FILES, n) end
  T.eq(res.total_bytes, total)
  -- special_tokens_map.json has tokenizer_config.json's bytes: one blob, fetched once.
  T.eq(res.downloaded_bytes, total - #FILES["special_tokens_map.json"])
  T.eq(events[1].event, "start")
  T.eq(events[1].total_bytes, total)
  T.eq(#events[1].files, #WANTED)
  T.eq(events[#events].event, "done")
  T.eq(events[#events].snapshot, res.snapshot)
  T.eq(#by_event(events, "file_done"), #WANTED)
  local last = by_event(events, "progress")
  T.eq(last[#last].done_bytes, total)
end)

async("a second pull of the same revision downloads nothing", function()
  local res, err = pull("org/llama")
  T.eq(err, nil)
  T.eq(res.downloaded_bytes, 0)
  T.eq(#srv.requests, 1, "only the revision's API call")
  T.eq(srv.requests[1].path, "/api/models/org/llama/revision/main")
  -- By commit too, and the blobs are not touched.
  res, err = pull("org/llama@" .. C1)
  T.eq(err, nil)
  T.eq(res.downloaded_bytes, 0)
  T.eq(srv:count("resolve"), 0)
end)

async("a connection cut in the middle of a file resumes with Range", function()
  local files = standin.llama_files({via1 = "cdn", via2 = "cdn"})
  local sha1 = digest.sha256(files[SHARD1].data)
  srv:add_repo("org/cut", {commit = string.rep("c2", 20), files = files})
  srv:cut(sha1, 300000, 1)
  local res, err, _, events = pull("org/cut")
  T.eq(err, nil)
  local ranges = {}
  for _, r in ipairs(srv.requests) do
    if r.where == "cdn" and r.path:find(sha1, 1, true) then ranges[#ranges + 1] = r.range or "none" end
  end
  T.eq(ranges, {"none", "bytes=300000-"})
  T.eq(#by_event(events, "retry"), 1)
  T.matches(by_event(events, "retry")[1].reason, "truncated body %(got 300000 of")
  check_snapshot("org/cut", res.commit, files, WANTED)
end)

async("a cancelled pull leaves a resumable .incomplete; the next pull resumes it", function()
  local files = standin.llama_files({via1 = nil, via2 = "cdn"})
  files[SHARD1].via = nil  -- served by the resolve route itself, Range and all
  local commit = string.rep("c3", 20)
  srv:add_repo("org/cancel", {commit = commit, files = files})
  srv.throttle = {bytes = 16 * 1024, every_ms = 5}
  hub.PROGRESS_MS = 10
  local stop = false
  local res, err, code = pull("org/cancel", {cancelled = function() return stop end, on_event = function(ev)
    if ev.event == "progress" and ev.file == SHARD2 and ev.bytes > 100000 then stop = true end
  end})
  hub.PROGRESS_MS = 250
  T.eq(res, nil)
  T.eq(code, "cancelled")
  T.eq(err, "cancelled")
  local dir = cache.repo_dir(root, "org/cancel")
  local sha2 = digest.sha256(files[SHARD2].data)
  local part = fs.stat(dir .. "/blobs/" .. sha2 .. ".incomplete")
  T.eq(part ~= nil and part.size > 100000 and part.size < #files[SHARD2].data, true, ".incomplete kept, part-way")
  T.eq(fs.lstat(dir .. "/snapshots/" .. commit .. "/" .. SHARD2), nil, "no half file in snapshots/")
  T.eq(fs.stat(dir .. "/refs/main"), nil, "no ref for an unfinished pull")
  srv:reset()
  local events
  res, err, code, events = pull("org/cancel")
  T.eq({err, code}, {nil, nil})
  T.eq(srv:count("pytorch"), 0)
  local starts = by_event(events, "file_start")
  T.eq(#starts, 1, "only the unfinished shard moves")
  T.eq(starts[1].resume_from, part.size)
  local range
  for _, r in ipairs(srv.requests) do
    if r.where == "cdn" then range = r.range end
  end
  T.eq(range, "bytes=" .. part.size .. "-")
  T.eq(res.downloaded_bytes, #files[SHARD2].data, "the resumed file counts whole")
  check_snapshot("org/cancel", commit, files, WANTED)
  T.eq(fs.stat(dir .. "/blobs/" .. sha2 .. ".incomplete"), nil)
end)

async("a server that ignores Range starts the file over; a corrupt .incomplete is caught and dropped", function()
  local files = standin.llama_files({via1 = "cdn", via2 = "cdn"})
  local commit = string.rep("c4", 20)
  srv:add_repo("org/norange", {commit = commit, files = files})
  local dir = cache.repo_dir(root, "org/norange")
  local sha1, sha2 = digest.sha256(files[SHARD1].data), digest.sha256(files[SHARD2].data)
  assert(fs.mkdir_p(dir .. "/blobs"))
  assert(fs.write_atomic(dir .. "/blobs/" .. sha1 .. ".incomplete", files[SHARD1].data:sub(1, 5000)))
  assert(fs.write_atomic(dir .. "/blobs/" .. sha2 .. ".incomplete", string.rep("x", 5000)))  -- not its bytes
  srv.ignore_range = true  -- shard 1: asked from 5000, sent whole
  local res, err, code = pull("org/norange@" .. commit, {cancelled = function()
    return fs.stat(dir .. "/blobs/" .. sha1) ~= nil  -- stop once shard 1 is in
  end})
  T.eq({res, code}, {nil, "cancelled"})
  T.matches(err, "cancelled")
  T.eq(srv.requests[#srv.requests].range, "bytes=5000-")
  T.eq(fs.stat(dir .. "/blobs/" .. sha1).size, #files[SHARD1].data, "shard 1 restarted from 0 and kept")
  srv:reset()  -- shard 2: the server honours Range, the 5000 bad bytes stay in front
  res, err, code = pull("org/norange")
  T.eq(res, nil)
  T.eq(code, "verify")
  T.matches(err, "^" .. esc(SHARD2 .. ": sha256 "))
  T.eq(fs.stat(dir .. "/blobs/" .. sha2 .. ".incomplete"), nil, "the bad partial is gone")
  res, err = pull("org/norange")
  T.eq(err, nil)
  T.eq(res.downloaded_bytes, #files[SHARD2].data)
  check_snapshot("org/norange", commit, files, WANTED)
end)

async("a blob another download holds (huggingface_hub's .locks) is waited for, not fetched twice", function()
  local files = standin.llama_files()
  local commit = string.rep("d9", 20)
  srv:add_repo("org/locked", {commit = commit, files = files})
  local sha1 = digest.sha256(files[SHARD1].data)
  local locks = root .. "/.locks/models--org--locked"
  assert(fs.mkdir_p(locks))
  local held = assert(fs.lock(locks .. "/" .. sha1 .. ".lock"))  -- as Python's filelock holds it
  T.eq(select(3, fs.lock(locks .. "/" .. sha1 .. ".lock")), "busy")
  hub.LOCK_POLL_MS = 20
  local waits, result, perr = {}, nil, nil
  fb.spawn(function()
    result, perr = pull("org/locked", {on_event = function(ev)
      if ev.event == "wait" then waits[#waits + 1] = ev end
    end})
  end)
  fb.sleep(300)
  T.eq(result, nil, "still waiting")
  T.eq(#waits, 1)
  T.eq(waits[1].file, SHARD1)
  local dir = cache.repo_dir(root, "org/locked")
  T.eq(fs.stat(dir .. "/blobs/" .. sha1 .. ".incomplete"), nil, "nothing written while the lock is held")
  assert(fs.write_atomic(dir .. "/blobs/" .. sha1, files[SHARD1].data))  -- the other download's work
  held:unlock()
  for _ = 1, 250 do
    if result or perr then break end
    fb.sleep(20)
  end
  hub.LOCK_POLL_MS = 500
  T.eq(perr, nil)
  for _, f in ipairs(result.files) do
    if f.name == SHARD1 then T.eq(f.downloaded, false, "finished by the other download") end
  end
  T.eq(srv:count(sha1), 0, "shard 1 never requested")
  check_snapshot("org/locked", commit, files, WANTED)
end)

async("a gated repo: 401 and 403 say to accept the license and set HF_TOKEN; the token stays off the CDN", function()
  local files = standin.llama_files()
  srv:add_repo("org/gated", {commit = string.rep("d4", 20), files = files, gated = "hf_secret_token"})
  local res, err, code = pull("org/gated")
  T.eq(res, nil)
  T.eq(code, "gated")
  T.matches(err, "401 Unauthorized")
  T.matches(err, "https://huggingface.co/org/gated", "names the model's page")
  T.matches(err, "HF_TOKEN")
  T.eq(srv:count("^/api/"), 1, "the model's metadata is public")
  T.eq(srv:count("safetensors"), 0, "refused at config.json")
  res, err, code = pull("org/gated", {token = "hf_wrong"})
  T.eq({res, code}, {nil, "gated"})
  T.matches(err, "403 Forbidden.*token sent was refused")
  T.eq(err:find("hf_wrong", 1, true), nil, "the token is never in a message")
  srv:reset()
  env.HF_TOKEN = "hf_secret_token"
  res, err = pull("org/gated")
  T.eq({type(res), err}, {"table", nil})
  for _, r in ipairs(srv.requests) do
    if r.where == "cdn" or r.path:find("^/cdn/") then
      T.eq(r.auth, r.path:find("^/cdn/") and "Bearer hf_secret_token" or nil, r.path)
    else
      T.eq(r.auth, "Bearer hf_secret_token", r.path)
    end
  end
end)

async("a wrong sha256 is refused and the bad blob is not kept", function()
  local files = standin.llama_files()
  local lie = digest.sha256("something else")
  files[SHARD1].sha256 = lie
  local commit = string.rep("e5", 20)
  srv:add_repo("org/badsha", {commit = commit, files = files})
  local res, err, code = pull("org/badsha")
  T.eq(res, nil)
  T.eq(code, "verify")
  T.matches(err, esc(SHARD1 .. ": sha256 " .. digest.sha256(files[SHARD1].data) .. " does not match the Hub's " .. lie))
  local dir = cache.repo_dir(root, "org/badsha")
  T.eq(fs.stat(dir .. "/blobs/" .. lie), nil)
  T.eq(fs.stat(dir .. "/blobs/" .. lie .. ".incomplete"), nil)
  T.eq(fs.lstat(dir .. "/snapshots/" .. commit .. "/" .. SHARD1), nil)
end)

async("no safetensors, or an unsupported architecture: refused before any large download", function()
  srv:add_repo("org/pickles", {commit = string.rep("f6", 20), files = {
    ["config.json"] = '{"architectures": ["LlamaForCausalLM"]}',
    ["pytorch_model.bin"] = {data = standin.bytes(50000, 3), lfs = true}}})
  local res, err, code = pull("org/pickles")
  T.eq(res, nil)
  T.eq(code, "unsupported")
  T.eq(err, "org/pickles@main has no safetensors weights (only pickles: pytorch_model.bin, which fastbrain never loads)")
  T.eq(srv:count("resolve"), 0, "nothing fetched")
  srv:reset()
  srv:add_repo("org/gpt2", {commit = string.rep("a7", 20), files = standin.llama_files({arch = "GPT2LMHeadModel"})})
  res, err, code = pull("org/gpt2")
  T.eq({res, code}, {nil, "unsupported"})
  T.matches(err, "^org/gpt2@main: .*config%.json: field 'architectures': 'GPT2LMHeadModel' is not one of LlamaForCausalLM, ")
  T.eq(srv:count("resolve/"), 2, "config.json only (HEAD, GET)")
  T.eq(srv:count("config.json"), 2)
  -- The engine's own parser reads the whole config.json first: a field it needs, wrong, is refused too.
  srv:reset()
  srv:add_repo("org/odd", {commit = string.rep("b8", 20), files = standin.llama_files({intermediate_size = -3})})
  res, err, code = pull("org/odd")
  T.eq({res, code}, {nil, "unsupported"})
  T.matches(err, "^org/odd@main: .*config%.json: field 'intermediate_size'")
  T.eq(srv:count("resolve/"), 2, "config.json only (HEAD, GET)")
  T.eq(srv:count("safetensors"), 0)
end)

async("404s name the repository, the revision or the file", function()
  local _, err, code = pull("org/nope")
  T.eq(code, "not_found")
  T.eq(err, "repository org/nope not found on " .. srv.endpoint ..
    " (if it is private, set HF_TOKEN or --token to a token that can read it)")
  _, err, code = pull("org/nope", {token = "hf_x"})
  T.eq({err, code}, {"repository org/nope not found on " .. srv.endpoint, "not_found"})
  _, err, code = pull("org/llama@nope")
  T.eq(code, "not_found")
  T.matches(err, "^revision nope not found in org/llama")
  srv:fail("resolve/.*/tokenizer%.json$", 404)
  local dir = cache.repo_dir(root, "org/llama")
  assert(os.remove(dir .. "/snapshots/" .. C1 .. "/tokenizer.json"))
  _, err, code = pull("org/llama")
  T.eq(code, "not_found")
  T.matches(err, "^file tokenizer.json not found in org/llama at " .. C1)
  local files = standin.llama_files()
  files[SHARD2] = nil
  srv:add_repo("org/noshard", {commit = string.rep("b8", 20), files = files})
  _, err, code = pull("org/noshard")
  T.eq(code, "not_found")
  T.matches(err, "^" .. esc("file " .. SHARD2 .. " (named by model.safetensors.index.json) not found in org/noshard"))
end)

async("5xx answers are retried with backoff; too many give a clear error", function()
  srv:fail("^/api/models/", 503, 2)
  srv:fail("^/blob/", 500, 1)
  local dir = cache.repo_dir(root, "org/llama")
  T.eq(fs.lstat(dir .. "/snapshots/" .. C1 .. "/tokenizer.json"), nil, "tokenizer.json still missing")
  os.remove(dir .. "/snapshots/" .. C1 .. "/" .. SHARD2)
  os.remove(dir .. "/blobs/" .. digest.sha256(FILES[SHARD2].data))
  local res, err, _, events = pull("org/llama")
  T.eq(err, nil)
  T.eq(res.downloaded_bytes, #FILES[SHARD2].data + #FILES["tokenizer.json"])
  local retries = by_event(events, "retry")
  T.eq(#retries, 3)
  T.matches(retries[1].reason, "503")
  T.eq({retries[1].wait_ms, retries[2].wait_ms}, {5, 10}, "backoff doubles")
  check_snapshot("org/llama", C1, FILES, WANTED)
  srv:reset()
  srv:fail("^/api/models/", 502, 10)
  local _, err2, code = pull("org/llama", {tries = 3})
  T.eq(code, "network")
  T.matches(err2, "502.*%(gave up after 3 tries%)$")
  -- A server that is not there at all: a refused connection, retried, then named.
  local _, err3, code3 = pull("org/llama", {endpoint = "http://127.0.0.1:1", tries = 2})
  T.eq(code3, "network")
  T.matches(err3, "connection refused %(gave up after 2 tries%)$")
end)

async("offline: a complete revision from the cache, else a clear refusal, never the network", function()
  env.HF_HUB_OFFLINE = "1"
  local res, err, _, events = pull("org/llama")
  T.eq(err, nil)
  T.eq(res.commit, C1)
  T.eq(res.downloaded_bytes, 0)
  T.eq(#res.files, #WANTED)
  T.eq(events[#events].event, "done")
  res, err = pull("org/llama@" .. C1)
  T.eq({err, res.commit}, {nil, C1})
  local _, err2, code = pull("org/unseen")
  T.eq(code, "offline")
  T.matches(err2, "^org/unseen@main is not in the cache")
  -- org/gpt2's snapshot has its config.json only.
  local _, err3, code3 = pull("org/gpt2@" .. string.rep("a7", 20))
  T.eq(code3, "offline")
  T.matches(err3, "lacks model.safetensors in the cache and HF_HUB_OFFLINE=1")
  T.eq(#srv.requests, 0, "no request at all")
end)

T.test("list what the cache holds", function()
  local repos = cache.list(root)
  local by = {}
  for _, r in ipairs(repos) do by[r.repo] = r end
  local llama = by["org/llama"]
  T.eq(llama.refs, {main = C1})
  T.eq(#llama.snapshots, 1)
  local snap = llama.snapshots[1]
  T.eq(snap.commit, C1)
  T.eq(snap.refs, {"main"})
  T.eq(snap.complete, true)
  local names, sizes = {}, 0
  for _, f in ipairs(snap.files) do names[#names + 1] = f.name; sizes = sizes + f.size end
  T.eq(names, WANTED)
  T.eq(llama.size, sizes - #FILES["special_tokens_map.json"], "blobs are counted once")
  T.eq(by["org/gpt2"].snapshots[1].complete, false)
  T.eq(#by["org/badsha"].incomplete, 0)
end)

T.test("cleanup", function()
  srv:close()
  assert(fs.remove_tree(root:match("^(.*)/hub$")))
end)

T.run()
