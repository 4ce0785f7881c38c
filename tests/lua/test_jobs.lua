-- fastbrain.jobs: the registry from Lua with real worker processes (tests/jobs/worker.lua) in a
-- temporary data directory: conflicts, the single-flight guard, events and their replay,
-- the queue, cancel, resume after a close, misuse, and a corrupt job.json's job listed as
-- unreadable (by jobs.list and over HTTP by /api/jobs).
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local jobs = fb.jobs

local bin = assert(arg[1], "usage: fastbrain run tests/lua/test_jobs.lua PATH-TO-FASTBRAIN")

local dirs = {}
local function open(opts)
  local dir = os.tmpname()
  os.remove(dir)
  dirs[#dirs + 1] = dir
  opts = opts or {}
  opts.data_dir = dir
  opts.worker = {bin, "run", "tests/jobs/worker.lua"}
  opts.kill_grace = 0.5
  return assert(jobs.open(opts)), dir
end

-- Call check(job) on every event of skill until it returns true, then done().
local function until_state(skill, state, fn)
  local sub
  sub = jobs.subscribe(skill, function(ev)
    if ev.event == "state" and ev.state == state then
      sub:close()
      fn(jobs.get(ev.job))
    end
  end)
  return sub
end

T.test("a second start returns the live job and conflict; events number in order", function(done)
  local reg = open()
  local seen = {}
  jobs.subscribe("elec", function(ev) seen[#seen + 1] = ev end)
  local job = assert(jobs.start{skill = "elec", steps = 4})
  T.eq(job.state, "running")
  T.eq(job.spec, {steps = 4})
  local none, code, live = jobs.start{skill = "elec"}
  T.eq(none, nil)
  T.eq(code, "conflict")
  T.eq(live.id, job.id)
  local created = 0
  for _ = 1, 1000 do
    if jobs.start{skill = "elec", steps = 1} then created = created + 1 end
  end
  T.eq(created, 0)
  T.eq(#jobs.list{skill = "elec"}, 1)
  until_state("elec", "succeeded", T.guard(done, function(final)
    T.eq(final.progress.step, 4)
    T.eq(#final.loss_history, 4)
    T.eq(final.error, fb.json.null)
    for i, ev in ipairs(seen) do T.eq(ev.seq, i, "seq") end
    local replay = jobs.events(job.id)
    T.eq(#replay, final.seq)
    T.eq(#seen, final.seq - 1)  -- the last state event reaches this listener after that one
    local tail = jobs.events(job.id, final.seq - 2)
    T.eq({tail[1].seq, tail[2].seq}, {final.seq - 1, final.seq})
    T.eq(jobs.latest("elec").id, job.id)
    reg:close()
    done()
  end))
end)

T.test("queued jobs know their place; cancel queued and running", function(done)
  local reg = open{max_running = 1}
  local a = assert(jobs.start{skill = "a", steps = 1000, interval_ms = 20})
  local b = assert(jobs.start{skill = "b", steps = 1})
  local c = assert(jobs.start{skill = "c", steps = 1})
  T.eq({a.state, b.state, b.place, c.place}, {"running", "queued", 1, 2})
  T.eq(jobs.cancel(c.id), true)
  T.eq(jobs.get(c.id).state, "cancelled")
  local _, code = jobs.cancel(c.id)
  T.eq(code, "invalid")
  T.eq(select(2, jobs.cancel("nope")), "notfound")
  until_state("b", "succeeded", T.guard(done, function()
    local cancelled = jobs.list{state = "cancelled"}
    T.eq(#cancelled, 2)
    local page, total = jobs.list{offset = 1, limit = 1}
    T.eq({#page, total, page[1].id}, {1, 3, b.id})  -- newest first: c, b, a
    T.eq(select(2, jobs.list{offset = 5}), 3)
    T.eq(jobs.get(a.id).reason, "cancelled")
    reg:close()
    done()
  end))
  local progress
  progress = jobs.subscribe("a", function(ev)  -- once it runs its SIGTERM handler
    if ev.event == "progress" then
      progress:close()
      assert(jobs.cancel(a.id))
    end
  end)
end)

T.test("a job running when the registry closes is interrupted, then resumes", function(done)
  local reg, dir = open()
  local job = assert(jobs.start{skill = "elec", steps = 15, interval_ms = 20})
  fb.timer.after(150, T.guard(done, function()
    reg:close()
    T.raises(function() jobs.get(job.id) end, "no registry is open")
    fb.timer.after(300, T.guard(done, function()  -- the worker checkpoints and exits
      local again = assert(jobs.open{data_dir = dir, worker = {bin, "run", "tests/jobs/worker.lua"}})
      local j = jobs.get(job.id)
      T.eq(j.state, "interrupted")
      T.eq(#again:reports(), 0)
      local resumed = assert(jobs.resume(job.id))
      T.eq(resumed.state, "running")
      until_state("elec", "succeeded", T.guard(done, function(final)
        T.eq(final.progress.step, 15)
        local seqs = {}
        for _, ev in ipairs(jobs.events(job.id)) do
          if seqs[ev.seq] then error("duplicate seq " .. ev.seq) end
          seqs[ev.seq] = true
        end
        T.eq(#seqs, final.seq)
        again:close()
        done()
      end))
    end))
  end))
end)

T.test("misuse raises; bad skills and a taken data dir fail", function()
  T.raises(function() jobs.start{skill = "x"} end, "no registry is open")
  local reg = open()
  T.raises(function() jobs.open{data_dir = "/tmp"} end, "already open")
  T.raises(function() jobs.start{} end, "skill")
  local none, code, msg = jobs.start{skill = "../x"}
  T.eq({none, code}, {nil, "invalid"})
  T.matches(msg, "only a%-z")
  T.raises(function() jobs.list{state = "sleeping"} end, "not a job state")
  T.raises(function() jobs.list{limit = -1} end, "limit must be an integer >= 0")
  T.raises(function() jobs.subscribe("elec") end, "function expected")
  local sub = jobs.subscribe("*", function() end)
  T.eq(sub:active(), true)
  reg:close()
  T.eq(sub:active(), false)
  sub:close()
  reg:close()  -- idempotent
end)

T.test("a listener that raises is logged; the others still get every event", function(done)
  local reg = open()
  local got = 0
  jobs.subscribe("*", function() got = got + 1 end)
  jobs.subscribe("elec", function() error("listener boom") end)
  local job = assert(jobs.start{skill = "elec", steps = 1})
  until_state("elec", "succeeded", T.guard(done, function(final)
    T.eq(final.id, job.id)
    T.eq(got, final.seq - 1)  -- the final state event reaches it after this listener
    reg:close()
    done()
  end))
end)

T.test("a second registry on the data dir is refused with the holder's pid", function()
  local reg, dir = open()
  local pid = assert(io.open("/proc/self/stat")):read("n")
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write('print(select(2, require("fastbrain").jobs.open{data_dir = ...}))')
  f:close()
  local out = assert(io.popen(bin .. " run " .. script .. " " .. dir)):read("a")
  os.remove(script)
  T.matches(out, "is in use by pid " .. pid)
  reg:close()
end)

T.test("a corrupt job.json's job is listed as unreadable, by jobs.list and /api/jobs", function()
  local reg, dir = open()
  reg:close()
  local id = "20200101-000000-000"
  assert(fb.fs.mkdir_p(dir .. "/jobs/" .. id))
  assert(fb.fs.write_atomic(dir .. "/jobs/" .. id .. "/job.json", '{"id": "2020'))
  assert(fb.fs.write_atomic(dir .. "/jobs/" .. id .. "/progress.jsonl",
                            '{"seq":1,"event":"state","state":"queued","job":"' .. id .. '","skill":"elec"}\n'))
  reg = assert(jobs.open{data_dir = dir, worker = {bin, "run", "tests/jobs/worker.lua"}})
  T.matches(reg:reports()[1], "set aside as job%.json%.corrupt%-1")
  local list, total = jobs.list{state = "unreadable"}
  T.eq(total, 1)
  T.eq({list[1].id, list[1].skill, list[1].state, list[1].reason, list[1].set_aside},
       {id, "elec", "unreadable", "job.json: not valid JSON", "jobs/" .. id .. "/job.json.corrupt-1"})
  T.eq(select(2, jobs.resume(id)), "invalid")

  local router = require "fastbrain.router"
  local server = require "tests.api.server"
  local app = router.new()
  require("fastbrain.api.jobs").mount(app)
  app:listen{port = 0}
  local status, body = server.call(app, "GET", "/api/jobs?state=unreadable")
  T.eq({status, body.total, body.jobs[1].id, body.jobs[1].reason}, {200, 1, id, "job.json: not valid JSON"})
  status, body = server.call(app, "GET", "/api/jobs/" .. id)
  T.eq({status, body.job.state, body.job.set_aside}, {200, "unreadable", "jobs/" .. id .. "/job.json.corrupt-1"})
  status, body = server.call(app, "POST", "/api/jobs/" .. id .. "/resume")
  T.eq({status, body.error}, {409, "job " .. id .. " is unreadable: nothing to resume"})
  app:close(0)
  reg:close()
end)

T.test("cleanup", function()
  for _, dir in ipairs(dirs) do os.execute("rm -rf " .. dir) end
end)

T.run()
