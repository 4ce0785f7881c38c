-- fastbrain.pull: the body of `fastbrain pull ORG/NAME[@REVISION] [--token T] [--json]`: runs
-- fastbrain.hub.pull and shows it: a progress bar (bytes/s, ETA) on a terminal, plain lines
-- otherwise, or one JSON object per line with --json (hub.lua's events as they are). Exit 0 done,
-- 1 failed, 2 bad arguments; SIGINT/SIGTERM leave the .incomplete for the next pull (130/143).
--   main(args) -> exit status, inside a coroutine (engine/cmd_lua.c runs it on the loop)
local fb = require "fastbrain"
local hub = require "fastbrain.hub"
local hf_cache = require "fastbrain.hf_cache"
local json = require "fastbrain.json"

local M = {}

local usage = [[
usage: fastbrain pull ORG/NAME[@REVISION] [--token T] [--json]

Download a model from the Hugging Face Hub into the Hugging Face cache (the files fastbrain
reads: config, tokenizer, safetensors weights; never pickles). An interrupted pull resumes.

options:
  --token T   an access token for gated or private models (default: $HF_TOKEN)
  --json      one JSON object per line: start, progress, file_done, retry, done, error

environment: HF_ENDPOINT (a mirror; default https://huggingface.co), HF_HUB_CACHE / HF_HOME
(the cache), HF_HUB_OFFLINE=1 (no network: succeeds only when the model is cached), HF_TOKEN.
]]

local function bad_usage(msg)
  io.stderr:write("fastbrain pull: ", msg, "\n", usage)
  return 2
end

function M.human(n)
  local units = {"B", "kB", "MB", "GB", "TB"}
  local i = 1
  while n >= 1000 and i < #units do n, i = n / 1000, i + 1 end
  return i == 1 and string.format("%d B", n) or string.format("%.1f %s", n, units[i])
end

local function eta(s)
  if not s or s < 0 then return "--:--" end
  if s >= 3600 then return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return string.format("%02d:%02d", s // 60, s % 60)
end

-- How the events are shown: JSON lines, a bar redrawn in place on a terminal, or plain lines.
local function printer(opts)
  local out, err = io.stdout, io.stderr
  local bar_shown, last_line = false, -math.huge
  local function line(s)
    if bar_shown then out:write("\n"); bar_shown = false end
    out:write(s, "\n")
  end
  return function(ev)
    if opts.json then
      out:write(json.encode(ev), "\n")
      out:flush()
      return
    end
    local e = ev.event
    if e == "start" then
      local fresh = ev.total_bytes - ev.cached_bytes
      line(string.format("%s@%s (commit %s): %d files, %s%s", ev.repo, ev.revision, ev.commit:sub(1, 12),
        #ev.files, M.human(ev.total_bytes), fresh > 0 and (", " .. M.human(fresh) .. " to download") or ", all cached"))
    elseif e == "progress" and opts.tty then
      local width = 30
      local frac = ev.total_bytes > 0 and ev.done_bytes / ev.total_bytes or 1
      local fill = math.floor(frac * width + 0.5)
      out:write(string.format("\r[%s%s] %5.1f%% %s/%s  %s/s  ETA %s  %s\27[K", string.rep("#", fill),
        string.rep(".", width - fill), frac * 100, M.human(ev.done_bytes), M.human(ev.total_bytes),
        M.human(ev.bytes_per_s), eta(ev.eta_s), ev.file))
      bar_shown = true
    elseif e == "progress" then  -- plain lines: a file's middle, every 2 s at most
      if ev.bytes >= ev.size or fb.now() - last_line < 2000 then return end
      last_line = fb.now()
      line(string.format("%s %s/%s (total %s/%s) %s/s eta %ss", ev.file, M.human(ev.bytes), M.human(ev.size),
        M.human(ev.done_bytes), M.human(ev.total_bytes), M.human(ev.bytes_per_s), ev.eta_s))
    elseif e == "file_start" and ev.resume_from > 0 then
      line(string.format("%s: resuming at %s of %s", ev.file, M.human(ev.resume_from), M.human(ev.size)))
    elseif e == "file_done" and not opts.tty then
      line(string.format("%s %s %s", ev.downloaded and "downloaded" or "cached    ", ev.file, M.human(ev.size)))
    elseif e == "retry" then
      if bar_shown then out:write("\n"); bar_shown = false end
      err:write(string.format("fastbrain pull: %s; retry %d in %.1f s\n", ev.reason, ev.attempt - 1, ev.wait_ms / 1000))
    elseif e == "done" then
      line(string.format("done: %s downloaded; snapshot %s", M.human(ev.downloaded_bytes), ev.snapshot))
    elseif e == "error" then
      if bar_shown then out:write("\n"); bar_shown = false end
      err:write("fastbrain pull: ", ev.message, "\n")
    end
    out:flush()
  end
end

-- The body of `fastbrain pull ARGS...`: 0 done, 1 failed, 2 bad arguments.
function M.main(args)
  local spec, token, as_json
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then io.stdout:write(usage); return 0 end
    if a == "--json" then
      as_json = true
    elseif a == "--token" then
      token = args[i + 1]
      if not token or token == "" then return bad_usage("--token needs a value") end
      i = i + 1
    elseif a:sub(1, 1) == "-" then
      return bad_usage("unknown option " .. a)
    elseif spec then
      return bad_usage("one model at a time (got " .. spec .. " and " .. a .. ")")
    else
      spec = a
    end
    i = i + 1
  end
  if not spec then return bad_usage("which model? ORG/NAME[@REVISION]") end
  local show = printer({json = as_json, tty = not as_json and fb.isatty(1)})
  local ref, why = hf_cache.parse_ref(spec)
  if not ref then return bad_usage(why) end
  -- A signal ends the process at once (the default exit status); the file being written is
  -- closed by its <close> guard when the coroutine is closed, and stays resumable.
  for _, sig in ipairs({"int", "term"}) do
    fb.on_signal(sig, function()
      if as_json then
        show({event = "error", code = "cancelled", message = "interrupted (SIG" .. sig:upper() .. "); the partial download is kept"})
      else
        io.stdout:write("\n")
      end
      io.stderr:write("fastbrain pull: interrupted; the partial download is kept: run the same command to resume\n")
      fb.exit(sig == "int" and 130 or 143)
    end)
  end
  local result = hub.pull(spec, {token = token, on_event = show})
  return result and 0 or 1
end

return M
