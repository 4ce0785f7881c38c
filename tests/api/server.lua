-- tests/api/server.lua: scripts/serve.lua run in-process on a free port over a fresh data
-- directory, with tests/api/worker.lua as the worker, plus JSON request helpers.
local client = require "tests.http.client"
local fb = require "fastbrain"

local M = {}

-- start(bin) -> app (app.port, app.data_dir); bin: the fastbrain binary that runs the worker.
function M.start(bin)
  local dir = os.tmpname()
  os.remove(dir)
  return assert(loadfile(fb.root .. "/scripts/serve.lua"))(
    "--port", "0", "--data-dir", dir, "--worker", bin .. " run " .. fb.root .. "/tests/api/worker.lua")
end

-- call(app, method, path [, body [, content_type]]) -> status, decoded body, response.
-- A table body is sent as JSON.
function M.call(app, method, path, body, ctype)
  if type(body) == "table" then body = fb.json.encode(body) end
  local r = client.request(app.port, method, path,
                           {body = body, headers = {["Content-Type"] = ctype or "application/json"}})
  return r.status, fb.json.decode(r.body), r
end

-- Remove the data directory the server used.
function M.stop(app)
  app:close(0)
  app.registry:close()
  os.execute("rm -rf '" .. app.data_dir .. "'")
end

return M
