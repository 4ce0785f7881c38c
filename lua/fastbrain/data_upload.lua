-- fastbrain.data_upload: a skill's dataset upload (and its stats), checked and written off the
-- loop. The server's half (write, stats) hands the work to a child, `fastbrain run
-- scripts/data-upload.lua`, and waits for it in the handler's coroutine: a 25 MB file takes
-- seconds to check, which would stop every other request (and trip the router's runaway
-- guard). The child converts the body to JSONL, checks it with fastbrain.dataset and writes the
-- new data.jsonl as a hidden temp file beside the old one; the server renames it into place
-- only while the request still waits for its answer, so an error means nothing was written.
-- Temp files are `.upload-*` in the skill's folder: removed on every path, and by sweep() at
-- start for a server that died meanwhile. It does not know HTTP; fastbrain.api.skills does.
local fb = require "fastbrain"
local process = require "fastbrain.process"
local json = fb.json

local M = {}

M.TIMEOUT_MS = 60000     -- the child's deadline (the upload routes wait as long)
local DISK_FULL = "disk full while writing the skill's data"

-- ---- shared by both halves ----------------------------------------------------------------

-- A body as JSONL text: JSONL as is; JSON as a list of objects (or {key = list}, key
-- "examples" by default) -> text | nil, msg.
function M.to_jsonl(body, is_jsonl, key)
  if is_jsonl then return body end
  local ok, v, err = pcall(json.decode, body)
  if not ok then err = v end
  if err ~= nil then
    return nil, "bad JSON in request body: " .. tostring(err):gsub("^.-:%d+: ", ""):gsub("^json: ", "")
  end
  key = key or "examples"
  if type(v) == "table" and not json.is_array(v) and v[key] then v = v[key] end
  if type(v) ~= "table" or (next(v) ~= nil and not json.is_array(v)) then
    return nil, ("body: a list of %s (JSON) or JSONL (application/x-ndjson) expected"):format(key)
  end
  local lines = {}
  for i, ex in ipairs(v) do lines[i] = json.encode(ex) end
  lines[#lines + 1] = ""
  return table.concat(lines, "\n")
end

-- fastbrain.dataset's refusal ("path:N: msg" lines) -> {{line =, message =}, ...}.
local function problems(err)
  local list = {}
  for line in err:gmatch("[^\n]+") do
    local n, msg = line:match("^.-%.jsonl[^:]*:(%d+): (.*)$")
    list[#list + 1] = {line = tonumber(n) or json.null, message = msg or line}
  end
  return list
end

-- Check the JSONL file at path -> stats | nil, problems. Counted in bytes: an upload only needs
-- its lines checked, and the byte tokenizer needs no model.
function M.check(path, template)
  local ds, err = fb.dataset.load(path, {tokenizer = fb.tokenizer.bytes(), template = template or "chatml"})
  if not ds then return nil, problems(err) end
  local stats = ds:stats()
  ds:close()
  return stats
end

-- The data's stats in the tokens of the model `name` (a directory or ORG/NAME), cut at max_len
-- as a run on it would be (absent: the run's default) -> stats | nil, problems. The child loads
-- the tokenizer each time: the server's loop never tokenizes (a 32 MiB file takes ~2 s of CPU).
local function model_stats(path, name, template, max_len)
  local model = require "fastbrain.model"
  local train = require "fastbrain.train"
  local dir = model.locate(name) or name
  local tok, err = fb.tokenizer.load(dir)
  if not tok then return nil, {{line = json.null, message = "tokenizer: " .. tostring(err)}} end
  local chosen, eos = model.template(dir, template)
  if not chosen then return nil, {{line = json.null, message = eos}} end
  max_len = tonumber(max_len) or train.defaults(dir).max_len
  local ds, derr = fb.dataset.load(path, {tokenizer = tok, template = chosen, eos = eos, max_len = max_len})
  if not ds then return nil, problems(derr) end
  local stats = ds:stats()
  ds:close()
  stats.limit = max_len
  return stats
end

function M.count_lines(text)
  local n = 0
  for line in text:gmatch("[^\n]+") do
    if line:find("%S") then n = n + 1 end
  end
  return n
end

-- text's examples (its non-blank lines) with example n replaced by `with` (nil: removed)
-- -> text | nil when there is no example n. The numbering is the data route's.
function M.splice(text, n, with)
  local lines, k = {}, 0
  for line in text:gmatch("[^\n]+") do
    if line:find("%S") then
      k = k + 1
      if k ~= n then lines[#lines + 1] = line elseif with then lines[#lines + 1] = with end
    end
  end
  if n < 1 or n > k then return nil end
  lines[#lines + 1] = ""
  return table.concat(lines, "\n")
end

-- ---- the child ----------------------------------------------------------------------------

-- A write that failed -> the answer: 507 on a full disk, else 500; the path only in the log.
local function write_failed(err, code)
  fb.log.error("data upload: %s", tostring(err))
  if code == "ENOSPC" then return {status = 507, error = DISK_FULL} end
  return {status = 500, error = "cannot write the skill's data"}
end

-- The data at o.source with its example n replaced by `with` (nil: removed), written as `out`
-- -> the answer.
local function splice_into(o, n, with)
  local text = M.splice(fb.fs.read(o.source) or "", n, with)
  if not text then return {status = 404, error = ("no example %d"):format(n)} end
  local ok, werr, code = fb.fs.write_atomic(o.out, text)
  if not ok then return write_failed(werr, code) end
  return {status = 200, line = n, examples = M.count_lines(text)}
end

-- The upload: body (stdin) checked as `part`, then the new data as `out` -> the answer. With
-- --line N the body is one example that replaces the source's example N; --delete N removes it.
local function upload(o, body)
  local line = math.tointeger(tonumber(o.line or o.delete))
  if o.delete then return splice_into(o, line, nil) end
  local text, err = M.to_jsonl(body, o.format == "jsonl", o.key)
  if not text then return {status = 400, error = err} end
  if not text:find("%S") then return {status = 400, error = "body: no examples"} end
  local part = o.out .. ".part"
  local ok, werr, code = fb.fs.write_atomic(part, text)
  if not ok then return write_failed(werr, code) end
  local stats, bad = M.check(part, o.template)
  if not stats then
    return {status = 400, error = ("invalid dataset: %d bad line(s)"):format(#bad), lines = bad}
  end
  if line then return splice_into(o, line, (text:gsub("%s+$", ""))) end
  if o.append then
    local old = fb.fs.read(o.append) or ""
    if old ~= "" and old:sub(-1) ~= "\n" then old = old .. "\n" end
    text = old .. text
    ok, werr, code = fb.fs.write_atomic(o.out, text)
    if not ok then return write_failed(werr, code) end
  elseif not os.rename(part, o.out) then
    return write_failed("cannot rename " .. part)
  end
  return {status = 200, added = stats.examples, examples = M.count_lines(text)}
end

-- The stats of the data at o.stats -> the answer: in the tokens of the model at o.model when
-- there is one, else in bytes.
local function stats_of(o)
  local stats, bad
  if o.model then
    stats, bad = model_stats(o.stats, o.model, o.template ~= "" and o.template or nil, o["max-len"])
  else
    stats, bad = M.check(o.stats, o.template)
  end
  return {status = 200, stats = stats or json.null, problems = bad}
end

-- scripts/data-upload.lua: --template T (--out PATH [--append OLD | --line N --source OLD]
-- [--format jsonl|json] [--key K] with the body on stdin | --out PATH --delete N --source OLD |
-- --stats PATH [--model DIR [--max-len N]]); prints the answer as one JSON line.
function M.main(argv)
  local o = {}
  for i = 1, #argv - 1, 2 do o[argv[i]:gsub("^%-%-", "")] = argv[i + 1] end
  local answer = o.stats and stats_of(o) or upload(o, io.read("a") or "")
  if o.out then os.remove(o.out .. ".part") end
  io.write(json.encode(answer), "\n")
end

-- ---- the server's half --------------------------------------------------------------------

local uploads = 0

local function push(list, ...) table.move({...}, 1, select("#", ...), #list + 1, list) end

-- Run the child with argv's extra arguments and stdin -> its answer (a table with status).
local function run_child(args, stdin)
  local argv = {process.exepath(), "--log-level", "warn", "run", fb.root .. "/scripts/data-upload.lua"}
  table.move(args, 1, #args, #argv + 1, argv)
  local r, err = process.run{argv = argv, stdin = stdin, timeout_ms = M.TIMEOUT_MS, max_output = 4 << 20}
  if r and r.stderr ~= "" then fb.log.warn("%s", r.stderr:gsub("\n$", "")) end
  local answer = r and r.code == 0 and json.decode(r.stdout)
  if type(answer) == "table" and answer.status then return answer end
  fb.log.error("data upload child: %s", err or (r.timed_out and "timed out") or ("exit " .. tostring(r.code or r.signal)))
  return {status = 500, error = r and r.timed_out and "checking the data took too long" or "cannot check the data"}
end

-- write{dir =, data =, template =, body =, jsonl =, append = | line = n | delete = n,
-- still_wanted = fn} -> the answer ({status = 200, added =, examples =} or {status =, error =,
-- lines =}; an edit's has line = n). line: the body (one example) replaces example n; delete:
-- example n goes. Inside a coroutine. The new data goes in only if still_wanted() is true once
-- it is ready.
function M.write(o)
  uploads = uploads + 1
  local tmp = ("%s/.upload-%d.jsonl"):format(o.dir, uploads)
  local args = {"--template", o.template or "chatml", "--out", tmp, "--format", o.jsonl and "jsonl" or "json"}
  if o.append then push(args, "--append", o.data) end
  if o.line then push(args, "--line", tostring(o.line), "--source", o.data) end
  if o.delete then push(args, "--delete", tostring(o.delete), "--source", o.data) end
  local answer = run_child(args, o.body or "")
  if answer.status == 200 and not o.still_wanted() then answer = {status = 499, error = "gone"} end
  if answer.status == 200 then
    local ok, err = os.rename(tmp, o.data)
    if not ok then answer = write_failed(err) end
  end
  os.remove(tmp)
  os.remove(tmp .. ".part")
  return answer
end

-- stats(data_path, {template =, model = dir, max_len =}) -> the answer {status = 200, stats =,
-- problems =}: in the model's tokens (its template unless the skill names one), or in bytes
-- without a model. In a coroutine.
function M.stats(path, o)
  local args = {"--template", o.template or (o.model and "" or "chatml"), "--stats", path}
  if o.model then push(args, "--model", o.model) end
  if o.max_len then push(args, "--max-len", tostring(o.max_len)) end
  return run_child(args)
end

-- Remove what uploads left in each skill folder under skills_dir (a server killed meanwhile).
function M.sweep(skills_dir)
  for _, id in ipairs(fb.fs.list(skills_dir) or {}) do
    local dir = skills_dir .. "/" .. id
    for _, name in ipairs(fb.fs.list(dir) or {}) do
      if name:find("^%.upload%-") then os.remove(dir .. "/" .. name) end
    end
  end
end

return M
