-- Crash safety over HTTP: `fastbrain serve` (its own process, tests/api/server.lua) with the
-- real `fastbrain worker` training the bundled model. Each round starts or resumes a job of one
-- of two fast skills (the request may still be in flight), waits a random moment, then
-- SIGKILLs the server (and starts a new one on the same data directory) or the running worker.
-- After every round: every job.json parses, no acknowledged (202) job is lost, none is listed
-- twice, at most one job per skill is live, every adapter directory is whole (the API lists
-- exactly those) and every succeeded job has one.
-- At the end every job is resumed by id (POST /api/jobs/:id/resume) from its checkpoint until
-- it succeeds, except one that failed before its first checkpoint (409, nothing to resume),
-- and every succeeded job's loss history is whole: steps 1..N, each once.
-- FB_CRASH_ROUNDS (default 50) rounds; FB_CRASH_SEED repeats a run (the seed is printed).
local T = require "tests.lua.testing"
local server = require "tests.api.server"
local fb = require "fastbrain"
local json = fb.json

local bin = assert(arg[1], "usage: fastbrain run tests/lua/test_api_crash.lua PATH-TO-FASTBRAIN")
local ROUNDS = math.tointeger(tonumber(os.getenv("FB_CRASH_ROUNDS") or "50"))
local SEED = math.tointeger(tonumber(os.getenv("FB_CRASH_SEED") or "")) or os.time()
local SKILLS = {"crash-a", "crash-b"}
local LIVE = {queued = true, running = true}

print(("crash loop: %d rounds, FB_CRASH_SEED=%d"):format(ROUNDS, SEED))
math.randomseed(SEED)

local data_dir = server.tmpdir()
local box = {}  -- box.srv: the server up now (replaced at each restart)
local acked = {}  -- job id -> true: a 202 named it
local in_flight = 0  -- requests of act() not yet answered (or failed)
local kills = {server = 0, worker = 0, none = 0}

local function call(...) return server.call(box.srv, ...) end

-- Every job the API lists (all pages): {id = job}.
local function listed()
  local out, page = {}, 1
  repeat
    local status, body = call("GET", "/api/jobs?per_page=100&page=" .. page)
    T.eq(status, 200)
    for _, job in ipairs(body.jobs) do
      assert(out[job.id] == nil, "job listed twice: " .. job.id)
      out[job.id] = job
    end
    page = page + 1
  until #body.jobs < 100
  return out
end

-- A safetensors file whose header parses and whose tensors end where the file ends.
local function whole_safetensors(path)
  local s = fb.fs.read(path)
  if not s or #s < 8 then return false end
  local n = string.unpack("<I8", s)
  local ok, header = pcall(json.decode, s:sub(9, 8 + n))
  if not ok or type(header) ~= "table" then return false end
  local stop = 0
  for name, t in pairs(header) do
    if name ~= "__metadata__" then stop = math.max(stop, t.data_offsets[2]) end
  end
  return 8 + n + stop == #s
end

-- Every adapter directory is whole, whatever became of its job: the trainer builds the output
-- in a hidden sibling (".<version>.partial") and renames it into place in one step. The API
-- lists only visible directories, never a hidden one, and all of them once no job is live (a
-- live one may publish between the listing and the look at the disk, so the listing comes
-- first: a directory never goes away here); a succeeded job's adapter exists.
local function check_adapters(jobs)
  local status, body = call("GET", "/api/adapters")
  T.eq(status, 200)
  local root, visible = data_dir .. "/adapters", {}
  for _, skill in ipairs(fb.fs.list(root) or {}) do
    for _, v in ipairs(fb.fs.list(root .. "/" .. skill) or {}) do
      local dir = root .. "/" .. skill .. "/" .. v
      if v:sub(1, 1) ~= "." then
        visible[skill .. "/" .. v] = true
        assert(whole_safetensors(dir .. "/adapter_model.safetensors"), dir .. ": adapter half-written")
        for _, f in ipairs{"adapter_config.json", "summary.json", "example_losses.json"} do
          assert(pcall(json.decode, fb.fs.read(dir .. "/" .. f) or ""), dir .. "/" .. f .. ": not whole")
        end
      end
    end
  end
  local listed_n, visible_n, quiet = 0, 0, true
  for _, a in ipairs(body.adapters) do
    assert(visible[a.skill .. "/" .. a.version], "listed but not a whole directory: " .. a.skill .. "/" .. a.version)
    listed_n = listed_n + 1
  end
  for _ in pairs(visible) do visible_n = visible_n + 1 end
  for _, job in pairs(jobs) do quiet = quiet and not LIVE[job.state] end
  if quiet then T.eq(listed_n, visible_n, "adapters listed") end
  for id, job in pairs(jobs) do
    if job.state == "succeeded" then
      assert(fb.fs.mode(job.spec.out .. "/summary.json"), id .. " succeeded without its adapter")
    end
  end
end

-- The invariants, with the server up and no request in flight (one the server is still
-- answering may have made a job directory but not yet its job.json).
local function check()
  server.wait_until(function() return in_flight == 0 end, "requests in flight to end", 10000)
  local on_disk = {}
  for _, id in ipairs(fb.fs.list(data_dir .. "/jobs") or {}) do
    local text = fb.fs.read(data_dir .. "/jobs/" .. id .. "/job.json")
    local ok, job = pcall(json.decode, text or "")
    assert(ok and type(job) == "table" and job.id == id,
           id .. "/job.json " .. (text and "does not parse" or "is missing") .. "; the directory holds: " ..
           table.concat(fb.fs.list(data_dir .. "/jobs/" .. id) or {}, " "))
    on_disk[id] = job
  end
  local jobs = listed()
  local live = {}
  for id in pairs(on_disk) do assert(jobs[id], "job on disk but not listed: " .. id) end
  for id, job in pairs(jobs) do
    assert(on_disk[id], "job listed but not on disk: " .. id)
    if LIVE[job.state] then
      assert(not live[job.skill], "two live jobs of " .. job.skill)
      live[job.skill] = id
    end
  end
  for id in pairs(acked) do assert(jobs[id], "acknowledged job lost: " .. id) end
  check_adapters(jobs)
  return jobs
end

local function restart()
  box.srv = server.spawn(bin, data_dir, {})
end

T.test("setup", function()
  restart()
  for _, skill in ipairs(SKILLS) do server.fast_skill(box.srv, skill, {checkpoint_interval = 3}) end
end)

-- Start or resume a job of skill (in a coroutine of its own: the kill may cut it short): the
-- skill's latest job by skill or by id, or any acknowledged job by id.
local function act(skill)
  in_flight = in_flight + 1
  fb.spawn(function()
    pcall(function()  -- a kill may cut either request short
      local _, st = call("GET", "/api/training/status/" .. skill)
      local path, body = "/api/train-skill/" .. skill, {max_steps = math.random(8, 40)}
      local dice = math.random()
      if st and (st.state == "interrupted" or st.state == "failed") and dice < 0.3 then
        path, body = "/api/training/resume/" .. skill, nil
      elseif st and (st.state == "interrupted" or st.state == "failed") and dice < 0.6 then
        path, body = "/api/jobs/" .. st.job .. "/resume", nil
      elseif dice < 0.7 and next(acked) then
        local ids = {}
        for id in pairs(acked) do ids[#ids + 1] = id end
        path, body = "/api/jobs/" .. ids[math.random(#ids)] .. "/resume", nil
      end
      local status, reply = call("POST", path, body)
      if status == 202 then acked[reply.job.id] = true end
    end)
    in_flight = in_flight - 1
  end)
end

local function running_pid()
  local _, body = call("GET", "/api/jobs?state=running")
  local job = body and body.jobs[1]
  return job and job.pid > 0 and job.pid
end

T.test(("%d rounds of SIGKILL at random moments lose nothing"):format(ROUNDS), function()
  for _ = 1, ROUNDS do
    act(SKILLS[math.random(#SKILLS)])
    fb.sleep(math.random(0, 700))
    local pid = math.random() < 0.5 and running_pid()
    if pid and server.kill(pid) then
      kills.worker = kills.worker + 1
    elseif math.random() < 0.8 then
      server.crash(box.srv)
      kills.server = kills.server + 1
      restart()
    else
      kills.none = kills.none + 1
    end
    fb.sleep(20)  -- a request cut short by the kill gives up
    check()
  end
  print(("kills: %d servers, %d workers, %d rounds without; %d jobs acknowledged"):format(
    kills.server, kills.worker, kills.none, (function() local n = 0 for _ in pairs(acked) do n = n + 1 end return n end)()))
end, {timeout = 3600 * 1000})

local function get(id) return select(2, call("GET", "/api/jobs/" .. id)).job end

-- Resume job by id until it succeeds (a failed run may be resumed again from its checkpoint).
local function finish(job)
  for _ = 1, 5 do
    local status, body = call("POST", "/api/jobs/" .. job.id .. "/resume")
    assert(status == 202, ("resume %s: %s %s"):format(job.id, status, body.error))
    local now = server.wait_until(function()
      local j = get(job.id)
      return not LIVE[j.state] and j
    end, job.id .. " to end")
    if now.state == "succeeded" then return now end
    job = now
  end
  error("job " .. job.id .. " does not succeed")
end

T.test("every resumable job resumes by id to success; every succeeded job has a whole loss history", function()
  server.wait_until(function()
    for _, job in pairs(check()) do if LIVE[job.state] then return false end end
    return true
  end, "the live jobs to end")
  local jobs, order = check(), {}
  for _, job in pairs(jobs) do order[#order + 1] = job end
  table.sort(order, function(a, b) return a.id < b.id end)
  local resumed, refused = 0, 0
  for _, job in ipairs(order) do
    if job.state == "failed" and job.checkpoint_step == json.null then
      -- Killed before its first checkpoint: nothing to resume.
      local status, body = call("POST", "/api/jobs/" .. job.id .. "/resume")
      T.eq({status, body.job.id}, {409, job.id})
      T.matches(body.error, "failed before its first checkpoint")
      refused = refused + 1
    elseif job.state ~= "succeeded" then
      finish(job)
      resumed = resumed + 1
    end
  end
  local succeeded = 0
  for id, job in pairs(check()) do
    if job.state ~= "succeeded" then
      T.eq({job.state, job.checkpoint_step}, {"failed", json.null}, id)
    else
      for i, pt in ipairs(job.loss_history) do T.eq(pt[1], i, id .. " loss history step") end
      T.eq(#job.loss_history, job.summary.steps, id .. " loss history length")
      succeeded = succeeded + 1
    end
  end
  print(("resumed %d jobs to success, %d refused (failed before a checkpoint); %d succeeded jobs have a whole loss history"):format(
    resumed, refused, succeeded))
end, {timeout = 600 * 1000})

T.test("teardown", function() server.close(box.srv) end)

T.run()
