-- scripts/serve.lua run in-process on a free port: /api/health (version, model processes),
-- the request log, 404s.
local T = require "tests.lua.testing"
local client = require "tests.http.client"
local fb = require "fastbrain"

local data_dir = os.tmpname()  -- a fresh data directory: serve takes its lock
os.remove(data_dir)
local app = assert(loadfile(fb.root .. "/scripts/serve.lua"))("--port", "0", "--data-dir", data_dir)

T.test("serve answers /api/health with the version", function()
  local r = client.request(app.port, "GET", "/api/health")
  T.eq(r.status, 200)
  T.eq(r.headers["content-type"], "application/json")
  T.eq(fb.json.decode(r.body), {status = "ok", version = fb.version, models = {}})  -- no model process yet
  T.eq(app.data_dir, data_dir)
end)

T.test("unknown API paths are JSON 404s", function()
  local r = client.request(app.port, "GET", "/api/nothing")
  T.eq(r.status, 404)
  T.eq(fb.json.decode(r.body), {error = "not found"})
end)

T.test("a mutating request from a foreign origin is refused", function()
  local r = client.request(app.port, "POST", "/api/health",
                           {body = "{}", headers = {Origin = "http://evil.example"}})
  T.eq(r.status, 403)
end)

T.test("teardown", function()
  app:close(0)
  os.execute("rm -rf " .. data_dir)
end)

T.run()
