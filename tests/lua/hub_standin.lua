-- A local stand-in of the Hugging Face Hub for fastbrain.hub's tests, speaking the protocol
-- huggingface_hub and the Hub speak: on the engine's own HTTP server,
--   GET  /api/models/ORG/NAME/revision/REV      {id, sha, siblings: [{rfilename}]}
--   HEAD/GET /ORG/NAME/resolve/REV/FILE         small files: 200, ETag "<git blob sha1>" (or a
--        relative 307 to /api/resolve-cache/models/ORG/NAME/COMMIT/FILE, as the Hub now does);
--        LFS files: 302 to /cdn/<sha256> (a second path) or to the CDN (another port, so
--        another host), with X-Linked-Etag "<sha256>", X-Linked-Size; X-Repo-Commit on both
--   GET  /cdn/<sha256>                          the bytes, Range: bytes=N- answered with 206
-- and errors as the Hub sends them (401/403 for a gated repo, 404 with X-Error-Code
-- RepoNotFound / RevisionNotFound / EntryNotFound). The CDN on its own port is a raw HTTP server
-- on cosockets, so it can cut a connection in the middle of a body or send it slowly.
--
-- start() -> s: s.endpoint, s.cdn_base, s:add_repo(repo, spec), s:fail(pattern, status, times),
-- s:cut(sha, after_bytes, times), s.throttle = {bytes =, every_ms =} | nil, s.ignore_range (the
-- CDN answers 200 with the whole body to a Range request), s.requests
-- ({method, path, range, auth, where = "hub"|"cdn"}), s:reset(), s:close().
-- spec: {commit =, refs = {main = commit}, gated = token|nil, files = {name -> data | {data =,
-- lfs = true, via = "path"|"cdn"|"cache"|nil (served by the resolve route itself), sha256 = (a
-- lie)}}}
local fb = require "fastbrain"
local router = require "fastbrain.router"
local cosocket = require "fastbrain.cosocket"
local digest = require "fastbrain.digest"

local M = {}

function M.git_sha1(data) return digest.new("sha1"):update("blob " .. #data .. "\0"):update(data):hex() end

-- n bytes of synthetic weights, different per seed and per 4 kB block (a block of LCG output,
-- each copy led by its index), quick to make in Lua even for a few MB.
function M.bytes(n, seed)
  local words, x = {}, seed or 1
  for i = 1, 511 do
    x = (x * 6364136223846793005 + 1442695040888963407) & 0xffffffffffffffff
    words[i] = string.pack("<i8", x)
  end
  local block, parts = table.concat(words), {}
  for i = 1, (n + 4095) // 4096 do parts[i] = string.pack("<I8", i * 1000003 + (seed or 1)) .. block end
  return table.concat(parts):sub(1, n)
end

local function range_of(header)
  local from = header and tonumber(header:match("^bytes=(%d+)%-$"))
  if not from then return nil end
  return from
end

function M.start()
  local s = {repos = {}, blobs = {}, requests = {}, faults = {}, cuts = {}}
  local app = router.new{timeout = 30000}

  local function record(where, method, path, headers)
    s.requests[#s.requests + 1] = {where = where, method = method, path = path,
                                   range = headers.range, auth = headers.authorization}
  end

  -- A scripted failure for this request, if one is left: its status.
  local function fault(path)
    for _, f in ipairs(s.faults) do
      if f.times > 0 and path:find(f.pattern) then
        f.times = f.times - 1
        return f.status
      end
    end
  end

  local function hub_error(res, status, code, message)
    res:json(status, {error = message}, {["X-Error-Code"] = code, ["X-Error-Message"] = message})
  end

  -- The repo for a request, or an answer already sent, as the Hub answers: an unknown repo is
  -- 401 without a token (private ones must not show) and 404 with one; a gated repo's metadata
  -- is public (api) but its files need a token with access (401 without one, 403 without access).
  local function repo_for(req, res, org, name, api)
    local repo = s.repos[org .. "/" .. name]
    if not repo then
      if req.headers.authorization then hub_error(res, 404, "RepoNotFound", "Repository not found")
      else hub_error(res, 401, "RepoNotFound", "Repository not found") end
      return nil
    end
    if repo.gated and not api then
      local auth = req.headers.authorization
      if not auth then
        hub_error(res, 401, "GatedRepo", "Access to model " .. repo.id .. " is restricted. You must be authenticated to access it.")
        return nil
      end
      if auth ~= "Bearer " .. repo.gated then
        hub_error(res, 403, "GatedRepo", "Access to model " .. repo.id .. " is restricted and you are not in the authorized list.")
        return nil
      end
    end
    return repo
  end

  local function commit_of(repo, rev)
    if repo.refs[rev] then return repo.refs[rev] end
    if rev == repo.commit then return rev end
  end

  app:get("/api/models/:org/:name/revision/:rev", function(req, res)
    record("hub", req.method, req.path, req.headers)
    local st = fault(req.path)
    if st then return hub_error(res, st, nil, "stand-in: scripted " .. st) end
    local repo = repo_for(req, res, req.params.org, req.params.name, true)
    if not repo then return end
    local commit = commit_of(repo, req.params.rev)
    if not commit then return hub_error(res, 404, "RevisionNotFound", "Invalid rev id: " .. req.params.rev) end
    local siblings = {}
    for _, n in ipairs(repo.names) do siblings[#siblings + 1] = {rfilename = n} end
    res:json(200, {id = repo.id, modelId = repo.id, sha = commit, siblings = siblings, private = false,
                   gated = repo.gated and "manual" or false})
  end)

  app:get("/:org/:name/resolve/:rev/*", function(req, res)
    record("hub", req.method, req.path, req.headers)
    local st = fault(req.path)
    if st then return hub_error(res, st, nil, "stand-in: scripted " .. st) end
    local repo = repo_for(req, res, req.params.org, req.params.name)
    if not repo then return end
    local commit = commit_of(repo, req.params.rev)
    if not commit then return hub_error(res, 404, "RevisionNotFound", "Invalid rev id: " .. req.params.rev) end
    local file = repo.files[req.params["*"]]
    if not file then return hub_error(res, 404, "EntryNotFound", req.params["*"] .. " does not exist") end
    local h = {["X-Repo-Commit"] = commit, ["Content-Type"] = "application/octet-stream"}
    if not file.lfs then
      if file.via == "cache" and req.params.rev == commit then  -- the Hub's relative redirect
        return res:send(307, "", {Location = ("/api/resolve-cache/models/%s/%s/%s"):format(repo.id, commit,
          req.params["*"]), ["X-Repo-Commit"] = commit})
      end
      h.ETag = '"' .. M.git_sha1(file.data) .. '"'
      return res:send(200, file.data, h)
    end
    h["X-Linked-Etag"] = '"' .. (file.sha256 or file.real_sha) .. '"'
    h["X-Linked-Size"] = tostring(#file.data)
    h.ETag = '"' .. M.git_sha1("version https://git-lfs.github.com/spec/v1\noid sha256:" .. file.real_sha .. "\n") .. '"'
    if file.via == "path" then
      h.Location = s.endpoint .. "/cdn/" .. file.real_sha .. "?signature=x"  -- a second path, same host
      return res:send(302, "", h)
    elseif file.via == "cdn" then
      h.Location = s.cdn_base .. "/blob/" .. file.real_sha
      return res:send(302, "", h)
    end
    local from = range_of(req.headers.range)
    if from then
      h["Content-Range"] = ("bytes %d-%d/%d"):format(from, #file.data - 1, #file.data)
      return res:send(206, file.data:sub(from + 1), h)
    end
    res:send(200, file.data, h)
  end)

  app:get("/api/resolve-cache/models/:org/:name/:commit/*", function(req, res)
    record("hub", req.method, req.path, req.headers)
    local repo = repo_for(req, res, req.params.org, req.params.name)
    if not repo then return end
    local file = repo.files[req.params["*"]]
    if not file or file.lfs then return hub_error(res, 404, "EntryNotFound", req.params["*"] .. " does not exist") end
    res:send(200, file.data, {ETag = '"' .. M.git_sha1(file.data) .. '"', ["X-Repo-Commit"] = req.params.commit,
                              ["Content-Type"] = "application/octet-stream"})
  end)

  app:get("/cdn/:sha", function(req, res)
    record("hub", req.method, req.path, req.headers)
    local st = fault(req.path)
    if st then return res:send(st, "scripted") end
    local data = s.blobs[req.params.sha]
    if not data then return res:send(404, "no such blob") end
    local from = range_of(req.headers.range)
    if from then
      if from >= #data then return res:send(416, "", {["Content-Range"] = "bytes */" .. #data}) end
      return res:send(206, data:sub(from + 1), {["Content-Range"] = ("bytes %d-%d/%d"):format(from, #data - 1, #data),
                                               ["Content-Type"] = "application/octet-stream"})
    end
    res:send(200, data, {["Content-Type"] = "application/octet-stream"})
  end)

  s.port = assert(app:listen{host = "127.0.0.1", port = 0})
  s.endpoint = "http://127.0.0.1:" .. s.port

  -- The CDN: raw HTTP/1.1 on cosockets (Content-Length bodies, Range, cuts, slow sends).
  local cdn = assert(cosocket.listen("127.0.0.1", 0))
  s.cdn_base = "http://127.0.0.1:" .. cdn.port
  local function serve_cdn(sock)
    local line = sock:receive("*l")
    if not line then return end
    local method, target = line:match("^(%S+) (%S+)")
    local headers = {}
    while true do
      local h = sock:receive("*l")
      if not h or h == "" then break end
      local k, v = h:match("^([^:]+):%s*(.*)$")
      if k then headers[k:lower()] = v end
    end
    record("cdn", method, target, headers)
    local st = fault(target or "")
    if st then
      sock:send(("HTTP/1.1 %d Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"):format(st))
      return
    end
    local sha = (target or ""):match("^/blob/(%x+)")
    local data = sha and s.blobs[sha]
    if not data then
      sock:send("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      return
    end
    local from = not s.ignore_range and range_of(headers.range) or 0
    local body = data:sub(from + 1)
    local head = from > 0 and ("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\n"):format(from, #data - 1, #data)
      or "HTTP/1.1 200 OK\r\n"
    sock:send(head .. "Content-Type: application/octet-stream\r\nContent-Length: " .. #body ..
      "\r\nConnection: close\r\n\r\n")
    if method == "HEAD" then return end
    local cut = s.cuts[sha]
    if cut and cut.times > 0 then
      cut.times = cut.times - 1
      sock:send(body:sub(1, cut.after))
      return  -- the connection closes in the middle of the body
    end
    local t = s.throttle
    if not t then return sock:send(body) end
    for i = 1, #body, t.bytes do
      if not sock:send(body:sub(i, i + t.bytes - 1)) then return end
      fb.sleep(t.every_ms)
    end
  end
  fb.spawn(function()
    while true do
      local sock = cdn:accept()
      if not sock then return end
      fb.spawn(function()
        local ok, err = pcall(serve_cdn, sock)
        if not ok then fb.log.error("hub stand-in cdn: %s", tostring(err)) end
        sock:close()
      end)
    end
  end)

  function s:add_repo(id, spec)
    local repo = {id = id, commit = spec.commit, refs = spec.refs or {main = spec.commit}, gated = spec.gated,
                  files = {}, names = {}}
    for name, f in pairs(spec.files) do
      if type(f) == "string" then f = {data = f} end
      f = {data = f.data, lfs = f.lfs, via = f.via, sha256 = f.sha256}
      if f.lfs then
        f.real_sha = digest.sha256(f.data)
        self.blobs[f.real_sha] = f.data
      end
      repo.files[name] = f
      repo.names[#repo.names + 1] = name
    end
    table.sort(repo.names)
    self.repos[id] = repo
    return repo
  end
  function s:fail(pattern, status, times) table.insert(self.faults, {pattern = pattern, status = status, times = times or 1}) end
  function s:cut(sha, after, times) self.cuts[sha] = {after = after, times = times or 1} end
  function s:reset() self.requests, self.faults, self.cuts, self.throttle, self.ignore_range = {}, {}, {}, nil, nil end
  -- The requests whose path matches pattern (and method, when given).
  function s:count(pattern, method)
    local n = 0
    for _, r in ipairs(self.requests) do
      if r.path:find(pattern) and (not method or r.method == method) then n = n + 1 end
    end
    return n
  end
  function s.close()
    app:close(0)
    cdn:close()
  end
  return s
end

-- The model repo the tests pull: a sharded Llama (index + two shards of synthetic bytes), its
-- json and tokenizer files, a README and a pickle that must never be fetched. via: how each
-- shard is served ("path": redirect to /cdn, "cdn": to the other port, nil: directly).
function M.llama_files(opts)
  opts = opts or {}
  local json = require "fastbrain.json"
  local shard1, shard2 = M.bytes(opts.shard1 or 1536 * 1024 + 7, 11), M.bytes(opts.shard2 or 700 * 1024 + 3, 12)
  local index = json.encode({metadata = {total_size = #shard1 + #shard2}, weight_map = {
    ["model.embed_tokens.weight"] = "model-00001-of-00002.safetensors",
    ["model.layers.0.self_attn.q_proj.weight"] = "model-00001-of-00002.safetensors",
    ["lm_head.weight"] = "model-00002-of-00002.safetensors"}})
  return {
    ["config.json"] = json.encode({architectures = {opts.arch or "LlamaForCausalLM"}, model_type = "llama",
                                   hidden_size = 64, intermediate_size = opts.intermediate_size or 128,
                                   num_hidden_layers = 1, num_attention_heads = 4, num_key_value_heads = 4,
                                   vocab_size = 256, rms_norm_eps = 1e-5, rope_theta = 10000,
                                   max_position_embeddings = 128, tie_word_embeddings = false}),
    ["generation_config.json"] = '{"bos_token_id": 1, "eos_token_id": 2}',
    ["tokenizer.json"] = {data = '{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}', via = "cache"},
    ["tokenizer_config.json"] = '{"eos_token": "</s>"}',
    ["special_tokens_map.json"] = '{"eos_token": "</s>"}',
    ["README.md"] = "# a test model\n",
    ["model.safetensors.index.json"] = index,
    ["model-00001-of-00002.safetensors"] = {data = shard1, lfs = true, via = opts.via1 or "path"},
    ["model-00002-of-00002.safetensors"] = {data = shard2, lfs = true, via = opts.via2 or "cdn"},
    ["pytorch_model.bin"] = {data = M.bytes(4096, 13), lfs = true},
  }
end

return M
