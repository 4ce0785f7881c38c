-- fastbrain.api.exports: `fastbrain export` from the dashboard, as a task per adapter.
--   POST /api/adapters/:skill/:version/export {to, type?, redo?}: 202 with the task, queued or
--     running; 200 with the finished one when that target was exported before (redo: export
--     again); 409 while an export of the adapter is queued or runs; 400 naming a bad field.
--   GET .../export: the latest task, or null. GET .../export/events: SSE, a snapshot then
--     progress (every second while it runs), done or error, each carrying the task.
--   GET .../export/download[?to=&type=]: the finished export (default: the latest task's), a
--     GGUF as it is, a directory (merged, ollama) as .tar.gz, sent as the client reads it.
-- The export runs as a child process (process.exepath(), no shell), so the loop keeps serving
-- and a client that leaves stops nothing; one runs at a time on this server (a merge holds a
-- whole model in memory), the others wait queued. On disk, per adapter:
--   <data_dir>/exports/<skill>/<version>/task.json     the latest task, replaced atomically so
--                                                      a restarted server shows it
--   <data_dir>/exports/<skill>/<version>/<target>/     one per target (gguf-f16, gguf-lora,
--     merged, ollama-f32): what export wrote, the download, and done.json once both are whole
local fb = require "fastbrain"
local router = require "fastbrain.router"
local process = require "fastbrain.process"
local adapters = require "fastbrain.api.adapters"
local tasks = require "fastbrain.tasks"

local M = {TICK_MS = 1000, TIMEOUT_MS = 6 * 3600 * 1000, MAX_ACTIVE = 1}

M.TYPES = {f32 = true, f16 = true, q8_0 = true}

-- What each target writes (out: the path given to --out, in the target's directory) and what
-- is downloaded; typed targets take --type; checked ones run export's llama.cpp check.
M.TARGETS = {
  gguf = {typed = true, checked = true,
          out = function(n, t) return ("%s-%s.gguf"):format(n, t) end},
  ["gguf-lora"] = {checked = true, out = function(n) return n .. "-lora.gguf" end},
  merged = {packed = true, out = function(n) return n .. "-merged" end},
  -- The directory's name becomes Ollama's model name in its README: the skill's id.
  ollama = {typed = true, checked = true, packed = true, out = function(_, _, skill) return skill end,
            download = function(n, t) return ("%s-ollama-%s.tar.gz"):format(n, t) end},
}

local queue = {}       -- tasks waiting for a free slot, oldest first
local active = 0

local function key(skill, version) return skill .. "/" .. version end

local function adapter_root(data_dir, skill, version)
  return ("%s/exports/%s/%s"):format(data_dir, skill, version)
end

-- The target's directory name, the path export writes and the file the download sends.
local function target_paths(data_dir, skill, version, to, weights)
  local t = M.TARGETS[to]
  local name = skill .. "-" .. version
  local dir = adapter_root(data_dir, skill, version) .. "/" .. to .. (t.typed and "-" .. weights or "")
  local out = t.out(name, weights, skill)
  local download = t.download and t.download(name, weights) or (t.packed and out .. ".tar.gz" or out)
  return {dir = dir, out = dir .. "/" .. out, out_name = out, file = dir .. "/" .. download,
          file_name = download}
end

local function download_url(task)
  local q = "?to=" .. task.to .. (task.type ~= fb.json.null and "&type=" .. task.type or "")
  return ("/api/adapters/%s/%s/export/download%s"):format(task.skill, task.version, q)
end

local function public(task)
  local done = task.state == "done"
  return {id = task.id, skill = task.skill, version = task.version, to = task.to, type = task.type,
          state = task.state, phase = task.phase, elapsed_s = task.elapsed_s,
          bytes = task.bytes or fb.json.null, file = done and task.file or fb.json.null,
          download = done and download_url(task) or fb.json.null, check = task.check or fb.json.null,
          error = task.error or fb.json.null, reused = task.reused or nil}
end

local function read_json(path)
  local text = fb.fs.read(path)
  local ok, v = pcall(fb.json.decode, text or "")
  return text and ok and type(v) == "table" and v or nil
end

-- A saved task as the board keeps it: an unknown target is not one; one a stopped server left
-- failed says so in its phase too; a finished one names its file.
local function restorer(data_dir)
  return function(task)
    if not M.TARGETS[task.to] then return nil end
    if task.state == "failed" then task.phase = "failed" end
    if task.state == "done" then
      task.file = target_paths(data_dir, task.skill, task.version, task.to, task.type).file_name
    end
    return task
  end
end

-- The line of export's stdout that says how llama.cpp took the file ("verified with llama.cpp
-- ...", "loaded by llama.cpp ...", "not checked: ..."), or nil.
function M.check_line(stdout)
  for line in (stdout or ""):gmatch("[^\n]+") do
    if line:match("^verified with ") or line:match("^loaded by ") or line:match("^not checked: ") then return line end
  end
end

-- Why a finished child failed, in one line: the last line of its stderr, else its status.
function M.failure(r)
  if r.timed_out then return ("the export took longer than %d minutes"):format(M.TIMEOUT_MS // 60000) end
  local last
  for line in (r.stderr or ""):gmatch("[^\n]+") do
    if line:find("%S") then last = line end
  end
  if last then return (last:gsub("^fastbrain export: ", "")) end
  return r.signal and ("the export was killed (signal %d)"):format(r.signal) or ("the export exited %s"):format(tostring(r.code))
end

-- A directory as name.tar.gz beside it, renamed into place whole -> true | nil, err
local function pack(paths)
  local partial = paths.file .. ".partial"
  local r, err = process.run{argv = {"tar", "-czf", partial, "--owner=0", "--group=0", "--numeric-owner",
                                     "-C", paths.dir, paths.out_name}, timeout_ms = M.TIMEOUT_MS}
  if r and r.code ~= 0 then err = "tar: " .. (r.stderr ~= "" and r.stderr or "exit " .. tostring(r.code)) end
  if r and r.code == 0 then return os.rename(partial, paths.file) end
  os.remove(partial)
  return nil, err
end

local function finish(ctx, task, state, fields)
  task.state, task.phase = state, state
  for k, v in pairs(fields) do task[k] = v end
  ctx.board:save(task)
  ctx.board:emit(task, state == "done" and "done" or "error")
end

-- Run export for the task in this coroutine: the child, then (a directory) the archive.
local function export(ctx, task)
  local t = M.TARGETS[task.to]
  local paths = target_paths(ctx.data_dir, task.skill, task.version, task.to, task.type)
  fb.fs.remove_tree(paths.dir)  -- a redo, or what an interrupted export left
  local ok, err = fb.fs.mkdir_p(paths.dir)
  if not ok then return finish(ctx, task, "failed", {error = err}) end
  local argv = {process.exepath(), "--log-level", "warn", "export", task.adapter_dir, "--to", task.to,
                "--out", paths.out}
  if t.typed then
    argv[#argv + 1], argv[#argv + 2] = "--type", task.type
  end
  task.state, task.phase, task.started = "running", "exporting", fb.now()
  ctx.board:save(task)
  ctx.board:emit(task, "progress")
  local child <close>, serr = process.spawn{argv = argv, timeout_ms = M.TIMEOUT_MS}
  if not child then return finish(ctx, task, "failed", {error = serr}) end
  -- Export writes its output whole, then checks it in llama.cpp: once the output is there
  -- while the child still runs, it is checking.
  local ticker = fb.timer.every(M.TICK_MS, function()
    task.elapsed_s = (fb.now() - task.started) // 1000
    if t.checked and task.phase == "exporting" and fb.fs.mode(paths.out) then task.phase = "checking" end
    ctx.board:emit(task, "progress")
  end)
  local r = child:wait()
  ticker:stop()
  task.elapsed_s = (fb.now() - task.started) // 1000
  if r.code ~= 0 then
    fb.fs.remove_tree(paths.dir)
    return finish(ctx, task, "failed", {error = M.failure(r)})
  end
  task.check = M.check_line(r.stdout)
  if t.packed then
    task.phase = "packing"
    ctx.board:emit(task, "progress")
    ok, err = pack(paths)
    if not ok then
      fb.fs.remove_tree(paths.dir)
      return finish(ctx, task, "failed", {error = "cannot pack the export: " .. tostring(err)})
    end
  end
  local st = fb.fs.stat(paths.file)
  task.bytes, task.file = st and st.size or 0, paths.file_name
  task.elapsed_s = (fb.now() - task.started) // 1000
  ok, err = fb.fs.write_atomic(paths.dir .. "/done.json", fb.json.encode(public{
    id = task.id, skill = task.skill, version = task.version, to = task.to, type = task.type, state = "done",
    phase = "done", elapsed_s = task.elapsed_s, bytes = task.bytes, check = task.check, file = task.file}))
  if not ok then return finish(ctx, task, "failed", {error = err}) end
  finish(ctx, task, "done", {})
end

local function pump(ctx)
  while active < M.MAX_ACTIVE and #queue > 0 do
    local task = table.remove(queue, 1)
    active = active + 1
    fb.spawn(function()
      local ok, err = pcall(export, ctx, task)
      active = active - 1
      if not ok then
        fb.log.error("exports: %s", tostring(err))
        finish(ctx, task, "failed", {error = "internal error: " .. tostring(err)})
      end
      pump(ctx)
    end)
  end
end

-- The finished export of a target, from its done.json, when its download is there -> task | nil
local function finished_export(data_dir, skill, version, to, weights)
  local paths = target_paths(data_dir, skill, version, to, weights)
  local done = read_json(paths.dir .. "/done.json")
  if not (done and fb.fs.mode(paths.file)) then return nil end
  done.file = paths.file_name
  return done
end

-- The request's target -> to, weights (json null when untyped) | nil, {field = what it must be}
local function parse_target(body)
  local fields = {}
  local to, weights = body.to, body.type
  local target = M.TARGETS[to]
  if not target then fields.to = "one of gguf, gguf-lora, merged, ollama" end
  if weights ~= nil and not M.TYPES[weights] then fields.type = "one of f32, f16, q8_0" end
  if target and not target.typed and weights ~= nil then fields.type = "only for gguf and ollama" end
  if body.redo ~= nil and type(body.redo) ~= "boolean" then fields.redo = "true or false" end
  if next(fields) then return nil, fields end
  if target.typed then return to, weights or "f32" end
  return to, fb.json.null
end

-- mount(app, {data_dir =})
function M.mount(app, ctx)
  local data_dir = ctx.data_dir
  local base = "/api/adapters/:skill/:version/export"
  local board = tasks.board{what = "exports", public = public, restore = restorer(data_dir),
                            file = function(k) return ("%s/exports/%s/task.json"):format(data_dir, k) end}
  ctx.board = board

  app:post(base, function(req, res)
    local skill, version = req.params.skill, req.params.version
    local dir = adapters.dir(data_dir, skill, version)
    local body = req:json()
    if type(body) ~= "table" then body = {} end
    local to, weights = parse_target(body)
    if not to then return res:json(400, {error = "invalid request", fields = weights}) end
    local live = board:latest(key(skill, version))
    if live and (live.state == "running" or live.state == "queued") then
      return res:json(409, {error = "an export of this adapter is already running", task = public(live)})
    end
    local done = not body.redo and finished_export(data_dir, skill, version, to, weights)
    if done then  -- exported before: the same file again, not a new export
      done.reused = true
      return res:json(200, {task = public(board:begin(key(skill, version), done))})
    end
    local task = board:begin(key(skill, version), {skill = skill, version = version, to = to, type = weights,
                                                   state = "queued", phase = "queued", elapsed_s = 0, adapter_dir = dir})
    queue[#queue + 1] = task
    pump(ctx)
    res:json(202, {task = public(task)})
  end)

  app:get(base, function(req, res)
    adapters.dir(data_dir, req.params.skill, req.params.version)
    local task = board:latest(key(req.params.skill, req.params.version))
    res:json(200, {task = task and public(task) or fb.json.null})
  end)

  app:get(base .. "/events", function(req, res)
    adapters.dir(data_dir, req.params.skill, req.params.version)
    board:watch(res, key(req.params.skill, req.params.version))
  end)

  app:get(base .. "/download", function(req, res)
    local skill, version = req.params.skill, req.params.version
    adapters.dir(data_dir, skill, version)
    local q = req.query
    local to, weights
    if q.to then
      to, weights = parse_target({to = q.to, type = q.type})
      if not to then return res:json(400, {error = "invalid request", fields = weights}) end
    else
      local task = board:latest(key(skill, version))
      if not task then router.fail(404, "no export of " .. key(skill, version) .. " yet") end
      to, weights = task.to, task.type
    end
    local done = finished_export(data_dir, skill, version, to, weights)
    if not done then router.fail(404, ("no finished %s export of %s"):format(to, key(skill, version))) end
    local path = target_paths(data_dir, skill, version, to, weights).file
    local ok, err = res:send_file(200, path, {
      ["Content-Type"] = path:match("%.gz$") and "application/gzip" or "application/octet-stream",
      ["Content-Disposition"] = ('attachment; filename="%s"'):format(done.file)})
    if not ok and err == "not found" then router.fail(404, "the export's file is gone") end
  end)
end

return M
