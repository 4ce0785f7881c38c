-- fastbrain.checkpoints: a skill's training jobs' checkpoints (the trainer keeps the newest two
-- of a run, in the job's folder, jobs/<id>/checkpoints, unless spec.checkpoints says elsewhere),
-- and one of them as an adapter directory that the model processes can answer with. The
-- conversion loads the base model, so it runs in a child (scripts/checkpoint-adapter.lua) that
-- the caller's coroutine waits for.
--   list(data_dir, skill) -> {{job =, step =, job_state =, created_at =}...}, newest job first
--   find(data_dir, skill, job_id, step) -> job, step_dir | nil, err
--   to_adapter(job, step_dir, out) -> true | nil, err: out appears whole or not at all
local fb = require "fastbrain"
local process = require "fastbrain.process"

local M = {TIMEOUT_MS = 300000}

-- Where a job's worker writes its checkpoints (fb_cmd_worker).
local function ckdir(data_dir, job)
  local chosen = job.spec.checkpoints
  if type(chosen) == "string" and chosen ~= "" then return chosen end
  return ("%s/jobs/%s/checkpoints"):format(data_dir, job.id)
end

-- The steps whose checkpoints a job has, in order.
local function steps(data_dir, job)
  local out = {}
  if type(job.spec) ~= "table" or job.spec.mode == "full" then return out end
  local dir = ckdir(data_dir, job)
  for _, name in ipairs(fb.fs.list(dir) or {}) do
    local step = name:match("^step%-(%d+)$")
    if step then out[#out + 1] = tonumber(step) end
  end
  table.sort(out)
  return out
end

function M.list(data_dir, skill)
  local out = fb.json.array()
  for _, job in ipairs(fb.jobs.list{skill = skill}) do
    for _, step in ipairs(steps(data_dir, job)) do
      out[#out + 1] = {job = job.id, step = step, job_state = job.state, created_at = job.created_at}
    end
  end
  table.sort(out, function(a, b) return a.created_at > b.created_at or (a.created_at == b.created_at and a.step > b.step) end)
  return out
end

function M.find(data_dir, skill, job_id, step)
  local job = fb.jobs.get(job_id)
  if not job or job.skill ~= skill then return nil, ("no job %s of %s"):format(job_id, skill) end
  local have = steps(data_dir, job)
  for _, s in ipairs(have) do
    if s == step then return job, ("%s/step-%08d"):format(ckdir(data_dir, job), step) end
  end
  local kept = #have > 0 and "its checkpoints are of step " .. table.concat(have, ", ") or "it has none"
  return nil, ("job %s has no checkpoint of step %d (%s)"):format(job_id, step, kept)
end

function M.to_adapter(job, step_dir, out)
  local tmp = out .. ".tmp"
  fb.fs.remove_tree(tmp)
  local r, err = process.run{argv = {process.exepath(), "--log-level", "warn", "run",
                                     fb.root .. "/scripts/checkpoint-adapter.lua", step_dir, tmp},
                             stdin = fb.json.encode(job.spec), timeout_ms = M.TIMEOUT_MS, max_output = 1 << 20}
  if r and r.code == 0 then
    local ok, rerr = os.rename(tmp, out)
    if ok then return true end
    err = rerr
  else
    err = r and (r.stderr:match("([^\n]+)\n?$") or ("exit " .. tostring(r.code))) or err
  end
  fb.fs.remove_tree(tmp)
  return nil, ("the checkpoint %s: %s"):format(step_dir:match("[^/]+$"), err)
end

return M
