-- fastbrain.jobs with the slurm executor on a real one-node Slurm cluster (tests/slurm/run.sh
-- starts it and sets SLURM_CONF): jobs run to the end with the events a local run has, single
-- flight, cancel (a checkpoint), scancel from outside, a PENDING reason, the registry closed
-- and opened again mid-job, and slurmd killed mid-job (requeued, resumed from its checkpoint).
-- The worker is tests/jobs/worker.lua, as in test_jobs.lua.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local jobs = fb.jobs
local process = require "fastbrain.process"
local server = require "tests.api.server"

local bin = assert(arg[1], "usage: test_jobs_slurm.lua FASTBRAIN WORKER.LUA CLUSTER-DIR")
local worker_lua, cluster = assert(arg[2]), assert(arg[3])

local dirs = {}
local function tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  dirs[#dirs + 1] = dir
  return dir
end

local function open(opts, dir)
  jobs.close()  -- a failed test leaves its registry open
  dir = dir or tmpdir()
  opts = opts or {}
  opts.data_dir = dir
  opts.worker = opts.worker or {bin, "run", worker_lua}
  opts.kill_grace = opts.kill_grace or 2
  if opts.executor == nil then opts.executor = "slurm" end
  opts.slurm = {poll = 0.2}
  return assert(jobs.open(opts)), dir
end

-- Wait (yielding to the loop) until pred() is true; fails after `secs`.
local function wait_until(what, secs, pred)
  local deadline = fb.now() + secs * 1000
  while not pred() do
    if fb.now() > deadline then error("timed out waiting for " .. what, 2) end
    fb.sleep(50)
  end
end

local function state_of(id) return jobs.get(id).state end

local function step_of(id)
  local p = jobs.get(id).progress
  return type(p) == "table" and p.step or 0
end

local function checkpoint_of(id)
  local c = jobs.get(id).checkpoint_step
  return math.type(c) and c or -1
end

-- The Slurm job id of a job, once sbatch has answered.
local function slurm_id_of(id)
  wait_until("the submission", 10, function() return jobs.get(id).slurm ~= fb.json.null end)
  return jobs.get(id).slurm.id
end

local function sh(cmd)
  local out = assert(io.popen(cmd .. " 2>&1")):read("a")
  return out
end

-- The worker's protocol events of a job as "type step" strings: no state events, no stderr
-- lines (a pipe and a file interleave them with stdout differently).
local function worker_events(id)
  local out = {}
  for _, ev in ipairs(jobs.events(id)) do
    if ev.event ~= "state" and ev.level ~= "stderr" then out[#out + 1] = ev.event .. " " .. tostring(ev.step or ev.resumed_from_step) end
  end
  return out
end

T.test("a job runs to the end through Slurm with the events of a local run", function()
  local spec = {skill = "same", steps = 4, interval_ms = 20}
  local reg = open{executor = "local"}
  local loc = assert(jobs.start(spec))
  wait_until("the local job", 10, function() return state_of(loc.id) == "succeeded" end)
  local local_events = worker_events(loc.id)
  reg:close()

  reg = open()
  local job = assert(jobs.start(spec, {memory_bytes = 300 << 20}))
  T.eq({job.state, job.memory_bytes}, {"running", 300 << 20})
  wait_until("the Slurm job", 30, function() return state_of(job.id) ~= "running" end)
  local final = jobs.get(job.id)
  T.eq({final.state, final.reason}, {"succeeded", fb.json.null})
  T.matches(final.slurm.id, "^%d+$")
  T.eq(final.slurm.state, "COMPLETED")
  T.eq(final.progress.step, 4)
  T.eq(worker_events(job.id), local_events)
  for i, ev in ipairs(jobs.events(job.id)) do T.eq(ev.seq, i, "seq") end
  -- --mem: the estimate and a quarter more
  T.matches(sh("scontrol -o show job " .. final.slurm.id), "MinMemoryNode=375M")
  reg:close()
end, {timeout = 60000})

T.test("fastbrain worker trains the tiny model through Slurm with a local run's events", function()
  local dir = tmpdir()
  assert(fb.fs.mkdir_p(dir))
  local lines = {}
  for line in io.lines(fb.root .. "/share/skills/plumbing-receptionist/data.jsonl") do
    if #lines < 8 then lines[#lines + 1] = line end
  end
  assert(fb.fs.write_atomic(dir .. "/data.jsonl", table.concat(lines, "\n") .. "\n"))
  local function spec(out)
    return {skill = "real", model = fb.root .. "/share/models/tiny", data = dir .. "/data.jsonl",
            max_steps = 3, micro_batch = 2, device = "cpu", out = dir .. "/" .. out}
  end
  local runs = {}
  for _, executor in ipairs{"local", "slurm"} do
    local reg = open{executor = executor, worker = {bin, "worker"}}
    local job = assert(jobs.start(spec(executor)))
    wait_until(executor .. " training", 60, function() return state_of(job.id) ~= "running" end)
    T.eq({executor, state_of(job.id), jobs.get(job.id).reason}, {executor, "succeeded", fb.json.null})
    runs[executor] = worker_events(job.id)
    reg:close()
  end
  T.eq(runs.slurm, runs["local"])
  assert(#runs.slurm >= 5, "start, 3 progress, done at least")
end, {timeout = 150000})

T.test("a cuda job asks Slurm for a GPU; a cluster without one fails it saying why", function()
  local reg = open()
  local job = assert(jobs.start{skill = "gpu", steps = 1, device = "cuda"})
  wait_until("sbatch's answer", 10, function() return state_of(job.id) ~= "running" end)
  local final = jobs.get(job.id)
  T.eq({final.state, final.slurm}, {"failed", fb.json.null})
  T.matches(final.reason, "^sbatch failed %(exit status 1%): .*gres")
  reg:close()
end, {timeout = 30000})

T.test("fastbrain serve --executor slurm: 50 concurrent starts of one skill make one job", function()
  jobs.close()
  local app = server.start("--executor", "slurm")
  server.fast_skill(app, "fast")
  local codes, pending = {}, 50
  for _ = 1, 50 do
    fb.spawn(function()
      local status = server.call(app, "POST", "/api/train-skill/fast", {max_steps = 2})
      codes[status] = (codes[status] or 0) + 1
      pending = pending - 1
    end)
  end
  wait_until("50 answers", 20, function() return pending == 0 end)
  T.eq(codes, {[202] = 1, [409] = 49})
  local st = server.wait_state(app, "fast", "succeeded", "failed", "cancelled")
  T.eq({st.state, st.reason}, {"succeeded", fb.json.null})
  T.eq(#sh("squeue -h -t all -n fastbrain-fast -o %i"):gsub("[^\n]", ""), 1, "Slurm jobs")
  server.stop(app)
end, {timeout = 90000})

T.test("cancel gives a checkpoint; resume goes on in a new Slurm job", function()
  local reg = open()
  local first = assert(jobs.start{skill = "one", steps = 60, interval_ms = 50})
  wait_until("progress", 30, function() return step_of(first.id) >= 3 end)
  assert(jobs.cancel(first.id))
  wait_until("the cancel", 30, function() return state_of(first.id) ~= "running" end)
  local final = jobs.get(first.id)
  T.eq({final.state, final.reason}, {"cancelled", "cancelled"})
  assert(final.checkpoint_step >= 3, "checkpoint at step " .. tostring(final.checkpoint_step))
  assert(jobs.resume(first.id))  -- a new Slurm job for the same job, from its checkpoint
  wait_until("the resumed run", 30, function() return state_of(first.id) ~= "running" end)
  local resumed = jobs.get(first.id)
  T.eq({resumed.state, resumed.progress.step, resumed.progress.resumed_from_step},
       {"succeeded", 60, final.checkpoint_step})
  assert(resumed.slurm.id ~= final.slurm.id, "a new Slurm job")
  reg:close()
end, {timeout = 60000})

T.test("scancel from outside reads as cancelled", function()
  local reg = open()
  local job = assert(jobs.start{skill = "outside", steps = 1000, interval_ms = 50})
  wait_until("running in Slurm", 30, function() return step_of(job.id) >= 1 end)
  sh("scancel " .. jobs.get(job.id).slurm.id)
  wait_until("the cancel", 30, function() return state_of(job.id) ~= "running" end)
  local final = jobs.get(job.id)
  T.eq(final.state, "cancelled")
  T.matches(final.reason, "^cancelled in Slurm %(scancel of job %d+%)$")
  reg:close()
end, {timeout = 60000})

T.test("a job Slurm cannot place yet shows PENDING and its reason", function()
  local reg = open{max_running = 3}
  local cpus = tonumber(sh("nproc"))
  local started = {}
  for i = 1, cpus + 1 do started[i] = assert(jobs.start{skill = "busy" .. i, steps = 1000, interval_ms = 50}) end
  local pending
  wait_until("a PENDING job", 30, function()
    for _, j in ipairs(started) do
      local s = jobs.get(j.id).slurm
      if s ~= fb.json.null and s.state == "PENDING" and s.reason == "Resources" then pending = j end
    end
    return pending
  end)
  local cur = jobs.get(pending.id)
  T.eq({cur.state, cur.reason}, {"running", "Slurm: PENDING (Resources)"})
  for _, j in ipairs(started) do assert(jobs.cancel(j.id)) end
  wait_until("the cancels", 30, function()
    for _, j in ipairs(started) do if state_of(j.id) == "running" then return false end end
    return true
  end)
  T.eq(state_of(pending.id), "cancelled")
  reg:close()
end, {timeout = 60000})

-- A job followed again by a registry opened after the last one stopped: it ends succeeded
-- with each of its 40 steps once.
local function followed_to_the_end(id, slurm_id)
  T.eq({jobs.get(id).state, jobs.get(id).slurm.id}, {"running", slurm_id})
  wait_until("the end", 30, function() return state_of(id) ~= "running" end)
  T.eq(state_of(id), "succeeded")
  local steps = {}
  for _, ev in ipairs(jobs.events(id)) do
    if ev.event == "progress" then steps[#steps + 1] = ev.step end
  end
  T.eq(#steps, 40, "each step once")
  for i, s in ipairs(steps) do T.eq(s, i, "step") end
end

T.test("a registry closed and opened again mid-job follows its Slurm job", function()
  local reg, dir = open()
  local job = assert(jobs.start{skill = "restart", steps = 40, interval_ms = 50})
  wait_until("progress", 30, function() return step_of(job.id) >= 3 end)
  local slurm_id = jobs.get(job.id).slurm.id
  reg:close()
  fb.sleep(500)  -- the worker goes on meanwhile, unread
  reg = open({}, dir)
  followed_to_the_end(job.id, slurm_id)
  reg:close()
end, {timeout = 60000})

-- The server in a process of its own: opens the registry, starts a job, runs until killed.
local SERVER = [[
local fb = require "fastbrain"
local dir, bin, worker = arg[1], arg[2], arg[3]
assert(fb.jobs.open{data_dir = dir, worker = {bin, "run", worker}, executor = "slurm",
                    slurm = {poll = 0.2}})
assert(fb.jobs.start{skill = "killed", steps = 40, interval_ms = 50})
fb.timer.every(60000, function() end)
]]

T.test("a registry SIGKILLed mid-job: the next one follows its Slurm job", function()
  jobs.close()
  local dir, script = tmpdir(), os.tmpname()
  assert(io.open(script, "w")):write(SERVER)
  local p <close> = assert(process.spawn{argv = {bin, "run", script, dir, bin, worker_lua}})
  wait_until("progress", 30, function()
    local f = io.popen(("cat %s/jobs/*/progress.jsonl 2>/dev/null"):format(dir))
    local text = f:read("a")
    f:close()
    return text:find('"step":3', 1, true) ~= nil
  end)
  p:kill("kill")
  p:wait()
  os.remove(script)
  local reg = open({}, dir)
  local job = jobs.list{skill = "killed"}[1]
  followed_to_the_end(job.id, job.slurm.id)
  reg:close()
end, {timeout = 60000})

T.test("slurmd killed mid-job: Slurm requeues a job, which resumes; one it may not requeue fails", function()
  local reg, dir = open{max_running = 2}
  local job = assert(jobs.start{skill = "node", steps = 30, interval_ms = 100, checkpoint_every = 5})
  local lost = assert(jobs.start{skill = "lost", steps = 1000, interval_ms = 100})
  wait_until("a checkpoint", 30, function() return checkpoint_of(job.id) >= 5 and step_of(lost.id) >= 1 end)
  local id, lost_id = jobs.get(job.id).slurm.id, jobs.get(lost.id).slurm.id
  sh("scontrol update JobId=" .. lost_id .. " Requeue=0")
  -- The node dies: slurmd, the jobs' slurmstepds and workers go at once.
  sh(("kill -9 $(cat %s/slurmd.pid) $(pgrep -f 'slurmstepd: \\[(%s|%s)\\.') $(cat %s/workers.txt)")
     :format(cluster, id, lost_id, dir))
  wait_until("the requeue", 60, function()
    return jobs.get(job.id).slurm.state == "PENDING" and state_of(lost.id) ~= "running"
  end)
  T.eq(state_of(job.id), "running")
  T.eq({state_of(lost.id), jobs.get(lost.id).reason},
       {"failed", "Slurm: NODE_FAIL: the node of job " .. lost_id .. " failed"})
  assert(os.execute(("tests/slurm/cluster.sh slurmd %s"):format(cluster)))
  wait_until("the end", 60, function() return state_of(job.id) ~= "running" end)
  local final = jobs.get(job.id)
  T.eq({final.state, final.slurm.id, final.progress.step}, {"succeeded", id, 30})
  local starts = {}
  for _, ev in ipairs(jobs.events(job.id)) do
    if ev.event == "start" then starts[#starts + 1] = ev.resumed_from_step end
  end
  T.eq(#starts, 2)
  assert(starts[2] >= 5, "resumed from step " .. tostring(starts[2]))
  local requeued = false
  for _, line in ipairs(final.log_tail) do requeued = requeued or line:find("requeued", 1, true) ~= nil end
  assert(requeued, "the log says it was requeued")
  reg:close()
end, {timeout = 120000})

T.test("a job over its --mem ends out of memory, saying what to change", function()
  if not fb.fs.mode(cluster .. "/memory_limits") then
    -- tests/slurm/cluster.sh found no cgroup v1 memory controller to hold jobs to --mem
    print("SKIPPED: Slurm cannot enforce --mem on this machine")
    return
  end
  local reg = open()
  local job = assert(jobs.start({skill = "greedy", mode = "grow", steps = 1000, interval_ms = 50},
                                {memory_bytes = 40 << 20}))
  wait_until("the end", 30, function() return state_of(job.id) ~= "running" end)
  local final = jobs.get(job.id)
  T.eq({final.state, final.slurm.state}, {"failed", "OUT_OF_MEMORY"})
  T.eq(final.reason, ("out of memory: job %s needed more than the 50 MiB Slurm gave it " ..
                      "(Slurm: OUT_OF_MEMORY); raise --slurm-mem, or lower micro_batch or max_len")
                     :format(final.slurm.id))
  reg:close()
end, {timeout = 60000})

-- --mem's value as `scontrol show job` reports it: "MinMemoryNode=375M", "MinMemoryCPU=1G".
local function slurm_memory(job_id)
  return sh("scontrol -o show job " .. slurm_id_of(job_id)):match("(MinMemory%a+=%S+)")
end

T.test("serve --executor slurm: --mem from the form's estimate; a TIMEOUT resumes from its checkpoint", function()
  jobs.close()
  local app = server.start("--executor", "slurm", "--slurm-time", "1", "--max-running", "2")
  -- A run that outlasts its minute: no early stop, few checkpoints but the one at SIGTERM.
  server.fast_skill(app, "slow", {patience = 0, checkpoint_interval = 100000, eval = {interval = 100000}})
  local status, body = server.call(app, "POST", "/api/train-skill/slow", {max_steps = 100000000})
  T.eq(status, 202)
  local slow = body.job.id
  -- No estimate measured for its shape yet: the cluster's default memory.
  T.eq({body.job.memory_bytes, slurm_memory(slow)}, {fb.json.null, "MinMemoryCPU=1G"})

  -- The form's estimate measures the shape; the start then asks Slurm for its peak and a
  -- quarter more, and the real worker trains within it (task/cgroup holds it there).
  server.fast_skill(app, "fast")
  local estimate
  status, estimate = server.call(app, "POST", "/api/training/estimate/fast", {max_steps = 2}, nil, 120000)
  T.eq(status, 200)
  local peak = estimate.estimate.cpu.peak_bytes
  status, body = server.call(app, "POST", "/api/train-skill/fast", {max_steps = 2})
  T.eq({status, body.job.memory_bytes}, {202, peak})
  T.eq(slurm_memory(body.job.id), ("MinMemoryNode=%dM"):format((peak + peak // 4 + (1 << 20) - 1) >> 20))
  local st = server.wait_state(app, "fast", "succeeded", "failed")
  T.eq({st.state, st.reason}, {"succeeded", fb.json.null})

  -- Slurm ends the slow job at its limit with SIGTERM: the worker checkpoints, and resume goes
  -- on from there in a new Slurm job.
  server.timeout = 150000
  st = server.wait_state(app, "slow", "failed")
  server.timeout = nil
  local job = jobs.get(slow)
  T.eq(job.slurm.state, "TIMEOUT")
  T.eq(st.reason, ("Slurm: TIMEOUT: job %s reached its time limit (--slurm-time 1); resume goes on " ..
                   "from its last checkpoint"):format(job.slurm.id))
  assert(job.checkpoint_step > 0, "a checkpoint at SIGTERM")
  status = server.call(app, "POST", "/api/training/resume/slow")
  T.eq(status, 202)
  local resumed = server.wait_until(function()
    for _, ev in ipairs(jobs.events(slow)) do
      if ev.event == "start" and ev.resumed_from_step > 0 then return ev.resumed_from_step end
    end
  end, "the resumed run's start")
  T.eq(resumed, job.checkpoint_step)
  T.eq(server.call(app, "POST", "/api/training/cancel/slow"), 202)
  server.wait_state(app, "slow", "cancelled")
  server.stop(app)
end, {timeout = 240000})

-- Last: it clears slurmctld's state, so Slurm numbers jobs from 1 again.
T.test("a job Slurm forgot while no registry followed it ends as Slurm's records say", function()
  local reg, dir = open()
  local job = assert(jobs.start{skill = "forgotten", mode = "crash", steps = 10, interval_ms = 100})
  local id = slurm_id_of(job.id)
  reg:close()
  wait_until("its end in Slurm", 30, function() return sh("squeue -h -t all -o %T -j " .. id):find("FAILED") end)
  assert(os.execute(("tests/slurm/cluster.sh forget %s"):format(cluster)))
  T.matches(sh("squeue -h -t all -j " .. id), "Invalid job id specified")
  -- Not in squeue: sacct (no accounting database here), then the job completion log.
  open({}, dir)
  wait_until("the end", 30, function() return state_of(job.id) ~= "running" end)
  local final = jobs.get(job.id)
  T.eq({final.state, final.slurm.state, final.reason},
       {"failed", "FAILED", "Slurm: FAILED: dataset error at data.jsonl:17"})
  jobs.close()
end, {timeout = 60000})

T.test("cleanup", function()
  jobs.close()
  for _, dir in ipairs(dirs) do os.execute("rm -rf " .. dir) end
end)

T.run()
