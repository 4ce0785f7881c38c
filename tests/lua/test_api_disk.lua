-- A full disk (issue 19, item 9): the skills API on a data directory in a 4 MiB tmpfs that a
-- filler file fills. An upload (replace or append) answers 507 "disk full while writing the
-- skill's data" with no path, and leaves the data and no temp file; creating a skill answers
-- 507 and leaves no folder; editing one answers 507 and leaves its skill.json. Mounting needs
-- root: elsewhere the test is skipped with a line saying so.
local T = require "tests.lua.testing"
local server = require "tests.api.server"
local fb = require "fastbrain"

local GOOD = '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n'

local mnt = server.tmpdir()
assert(fb.fs.mkdir_p(mnt))
if not os.execute(("mount -t tmpfs -o size=4m tmpfs '%s' 2>/dev/null"):format(mnt)) then
  print("skipped: cannot mount a tmpfs here (needs root)")
  os.remove(mnt)
  return
end

local app = server.start("--data-dir", mnt .. "/data")
local function call(...) return server.call(app, ...) end
local skill_dir = app.data_dir .. "/skills/full"

local function fill(on)
  if on then
    os.execute(("dd if=/dev/zero of='%s/filler' bs=4k 2>/dev/null"):format(mnt))
  else
    assert(os.remove(mnt .. "/filler"))
  end
end

local function left_behind()
  local left = {}
  for _, dir in ipairs({skill_dir, app.data_dir .. "/skills"}) do
    for _, name in ipairs(fb.fs.list(dir) or {}) do
      if name:find("^%.") then left[#left + 1] = name end
    end
  end
  return left
end

T.test("setup: a skill with data, then the disk fills", function()
  T.eq((call("POST", "/api/skills", {id = "full", name = "Full"})), 201)
  T.eq((call("PUT", "/api/skills/full/data", GOOD, "application/x-ndjson")), 200)
  fill(true)
end)

T.test("an upload says disk full, names no path, and writes nothing", function()
  local data = fb.fs.read(skill_dir .. "/data.jsonl")
  for _, method in ipairs({"PUT", "POST"}) do
    local status, body, r = call(method, "/api/skills/full/data", GOOD:rep(50), "application/x-ndjson")
    T.eq({status, body.error}, {507, "disk full while writing the skill's data"}, method)
    T.eq(r.body:find(mnt, 1, true), nil, method)
    T.eq(fb.fs.read(skill_dir .. "/data.jsonl"), data, method)
    T.eq(left_behind(), {}, method)
  end
end)

T.test("creating a skill is whole or nothing: 507 and no folder", function()
  local status, body = call("POST", "/api/skills", {id = "newbie", name = "New", description = ("d"):rep(3000)})
  T.eq({status, body.error}, {507, "disk full while writing the skill"})
  T.eq(fb.fs.mode(app.data_dir .. "/skills/newbie"), nil)
  T.eq((call("GET", "/api/skills/newbie")), 404)
  T.eq(left_behind(), {})
end)

T.test("editing a skill answers 507 and leaves skill.json as it was", function()
  local before = fb.fs.read(skill_dir .. "/skill.json")
  for _, method in ipairs({"PUT", "PATCH"}) do
    local status, body = call(method, "/api/skills/full", {name = "Full", description = ("d"):rep(3000)})
    T.eq({status, body.error}, {507, "disk full while writing the skill"}, method)
    T.eq(fb.fs.read(skill_dir .. "/skill.json"), before, method)
  end
end)

T.test("with room again, the same requests succeed", function()
  fill(false)
  T.eq((call("POST", "/api/skills/full/data", GOOD, "application/x-ndjson")), 200)
  T.eq((call("POST", "/api/skills", {id = "newbie", name = "New"})), 201)
  T.eq((call("PATCH", "/api/skills/full", {description = "roomy"})), 200)
end)

T.test("teardown", function()
  server.stop(app)
  os.execute(("umount '%s' && rmdir '%s'"):format(mnt, mnt))
end)

T.run()
