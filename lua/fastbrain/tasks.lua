-- fastbrain.tasks: the latest long task of each owner (a skill's data generation, an adapter's
-- export...), as the dashboard watches it: kept in a file, replaced atomically, so a restarted
-- server still shows it (one it was running or had queued then reads failed), and sent to SSE
-- listeners as it changes. A board holds one kind of task:
--   board{what = "generate", file = fn(key) -> path, public = fn(task) -> its JSON,
--         restore = fn(saved) -> task | nil (not a whole task: ignored)} -> board
--   board:latest(key) -> task | nil       this server's, else the saved one
--   board:begin(key, task) -> task        the owner's new latest (gets id, key), saved
--   board:start(key, task, run, ...) -> task | nil, live: begun and run(board, task, ...) in a
--     coroutine, unless the owner's latest task is still running (live)
--   board:save(task); board:emit(task, event): to the key's listeners, with public(task)
--   board:watch(res, key): GET .../events: a snapshot (when there is a task), then its events
local fb = require "fastbrain"

local M = {}

local Board = {}
Board.__index = Board

function M.board(opts)
  return setmetatable({what = opts.what, file = opts.file, public = opts.public,
                       restore = opts.restore or function(task) return task end,
                       tasks = {}, listeners = {}, next_id = 0}, Board)
end

function Board:save(task)
  local path = self.file(task.key)
  local ok, err = fb.fs.mkdir_p(path:match("^(.*)/[^/]*$"))
  if ok then ok, err = fb.fs.write_atomic(path, fb.json.encode(self.public(task))) end
  if not ok then fb.log.warn("%s: the task of %s was not saved: %s", self.what, task.key, err) end
end

function Board:latest(key)
  if self.tasks[key] == nil then
    local path = self.file(key)
    local text = fb.fs.read(path)
    local task = text and fb.json.decode(text)
    if type(task) == "table" and math.tointeger(task.id) then
      if task.state == "running" or task.state == "queued" then
        task.state, task.error = "failed", "interrupted: the server stopped while it ran"
      end
      task = self.restore(task)
    end
    if type(task) ~= "table" then
      if text then fb.log.warn("%s: %s is not a saved task; ignored", self.what, path) end
      task = false
    end
    if task then
      task.key = key
      self.next_id = math.max(self.next_id, task.id)
    end
    self.tasks[key] = task
  end
  return self.tasks[key] or nil
end

function Board:begin(key, task)
  self:latest(key)  -- a saved task's id counts
  self.next_id = self.next_id + 1
  task.id, task.key = self.next_id, key
  self.tasks[key] = task
  self:save(task)
  return task
end

function Board:start(key, task, run, ...)
  local live = self:latest(key)
  if live and live.state == "running" then return nil, live end
  self:begin(key, task)
  fb.spawn(run, self, task, ...)
  return task
end

function Board:emit(task, event)
  for stream in pairs(self.listeners[task.key] or {}) do stream:send(event, self.public(task)) end
end

function Board:watch(res, key)
  local stream = res:sse()
  if not stream then return end
  self.listeners[key] = self.listeners[key] or {}
  self.listeners[key][stream] = true
  stream:on_close(function() self.listeners[key][stream] = nil end)
  local task = self:latest(key)
  if task then stream:send("snapshot", self.public(task)) end
end

return M
