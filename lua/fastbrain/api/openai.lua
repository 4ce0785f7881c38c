-- fastbrain.api.openai: the trained skills behind OpenAI's wire format, for any OpenAI client.
-- GET /v1/models: each skill with an adapter (its newest), each SKILL@VERSION, and the base models.
-- POST /v1/chat/completions: model, messages, max_tokens (or max_completion_tokens), temperature,
-- top_p, stop, seed, stream (+ stream_options.include_usage), n = 1; and beyond OpenAI's,
-- repetition_penalty and ignore_eos (answers of exactly max_tokens, as vLLM's). A skill's system
-- prompt applies when the conversation has none. Answers come from fastbrain.model_pool (a process
-- per base model); a client that goes away stops its answer. Errors are {"error": {message, type,
-- param, code}}. docs/serving.md has the whole contract.
local fb = require "fastbrain"
local adapters = require "fastbrain.api.adapters"
local models = require "fastbrain.models"
local skills = require "fastbrain.skills"

local M = {DEFAULT_MAX_TOKENS = 256, MAX_TOKENS = 4096, MAX_STOPS = 4}

local ROLES = {system = "system", developer = "system", user = "user", assistant = "assistant"}

local function oai_error(res, status, message, kind, param, code, headers)
  return res:json(status, {error = {message = message, type = kind, param = param or fb.json.null,
                                    code = code or fb.json.null}}, headers)
end

local function invalid(res, param, message)
  return oai_error(res, 400, message, "invalid_request_error", param)
end

local function created_of(dir)
  local st = fb.fs.stat(dir)
  return st and st.mtime or 0
end

-- What a model name serves -> {base =, adapter =, skill =} | nil
local function resolve(ctx, name)
  local skill, version = name:match("^([^@]+)@(.+)$")
  skill = skill or name
  if skills.valid_id(skill) then
    for _, a in ipairs(adapters.list(ctx.data_dir)) do  -- newest first within a skill
      if a.skill == skill and (not version or a.version == version) then
        return {base = a.base_model or ctx.model, skill = skill,
                adapter = ("%s/adapters/%s/%s"):format(ctx.data_dir, skill, a.version)}
      end
    end
  end
  if version then return nil end
  local entry = models.describe(name, ctx.data_dir)
  if entry and entry.supported ~= false then return {base = models.path(name, ctx.data_dir)} end
  return nil
end

local function list_models(ctx)
  local data, seen = fb.json.array(), {}
  local function add(id, created, owner)
    data[#data + 1] = {id = id, object = "model", created = created, owned_by = owner}
  end
  for _, a in ipairs(adapters.list(ctx.data_dir)) do
    local created = created_of(("%s/adapters/%s/%s"):format(ctx.data_dir, a.skill, a.version))
    if not seen[a.skill] then
      seen[a.skill] = true
      add(a.skill, created, "fastbrain")
    end
    add(a.skill .. "@" .. a.version, created, "fastbrain")
  end
  for _, m in ipairs(models.list(ctx.data_dir)) do
    if m.supported ~= false then add(m.id, created_of(m.dir or ""), m.source) end
  end
  return data
end

local function content_text(content)
  if type(content) == "string" then return content end
  if type(content) ~= "table" then return nil end
  local parts = {}
  for _, part in ipairs(content) do
    if type(part) ~= "table" or part.type ~= "text" or type(part.text) ~= "string" then return nil end
    parts[#parts + 1] = part.text
  end
  return table.concat(parts)
end

-- The conversation in the engine's form -> messages, has_system | nil, param, message
local function read_messages(list)
  if type(list) ~= "table" or #list == 0 then return nil, "messages", "messages must be a non-empty array" end
  local out, has_system = {}, false
  for i, m in ipairs(list) do
    local param = ("messages[%d]"):format(i - 1)
    local role = type(m) == "table" and ROLES[m.role]
    if not role then return nil, param .. ".role", param .. ".role must be system, developer, user or assistant" end
    local text = content_text(m.content)
    if not text then return nil, param .. ".content", param .. ".content must be a string or a list of text parts" end
    has_system = has_system or role == "system"
    out[i] = {role = role, content = text}
  end
  return out, has_system
end

local function number_in(v, lo, hi, open_lo)
  return type(v) == "number" and v == v and (open_lo and v > lo or v >= lo) and v <= hi
end

local next_seed = os.time()

-- The request's settings for the pool -> opts | nil, param, message
local function read_options(body)
  local max = body.max_completion_tokens
  if max == nil then max = body.max_tokens end
  if max ~= nil and not (math.tointeger(max) and max >= 1) then
    return nil, "max_tokens", "max_tokens must be a positive integer"
  end
  local opts = {max_tokens = math.min(math.tointeger(max) or M.DEFAULT_MAX_TOKENS, M.MAX_TOKENS)}
  opts.temperature = body.temperature == nil and 1 or body.temperature
  if not number_in(opts.temperature, 0, 2) then return nil, "temperature", "temperature must be between 0 and 2" end
  opts.top_p = body.top_p == nil and 1 or body.top_p
  if not number_in(opts.top_p, 0, 1, true) then return nil, "top_p", "top_p must be in (0, 1]" end
  if body.seed ~= nil and not math.tointeger(body.seed) then return nil, "seed", "seed must be an integer" end
  next_seed = next_seed + 1
  opts.seed = math.tointeger(body.seed) or next_seed
  if body.repetition_penalty ~= nil then
    if not number_in(body.repetition_penalty, 0, 10, true) then
      return nil, "repetition_penalty", "repetition_penalty must be in (0, 10]"
    end
    opts.repetition_penalty = body.repetition_penalty
  end
  local stop = body.stop
  if type(stop) == "string" then stop = {stop} end
  if stop ~= nil then
    if type(stop) ~= "table" or #stop > M.MAX_STOPS then
      return nil, "stop", ("stop must be a string or up to %d strings"):format(M.MAX_STOPS)
    end
    for _, s in ipairs(stop) do
      if type(s) ~= "string" or s == "" then return nil, "stop", "stop strings must be non-empty" end
    end
    opts.stop_text = stop
  end
  if body.ignore_eos ~= nil then
    if type(body.ignore_eos) ~= "boolean" then return nil, "ignore_eos", "ignore_eos must be a boolean" end
    opts.ignore_eos = body.ignore_eos
  end
  if body.n ~= nil and body.n ~= 1 then return nil, "n", "only n = 1 is supported" end
  return opts
end

local id_counter = 0
local function completion_id()
  id_counter = id_counter + 1
  return ("chatcmpl-%x%06x"):format(os.time(), id_counter)
end

local function usage(done)
  return {prompt_tokens = done.prompt_tokens, completion_tokens = done.completion_tokens,
          total_tokens = done.prompt_tokens + done.completion_tokens}
end

-- An error event of the pool as an HTTP status and an OpenAI error -> status, type, code
local function failure_of(ev)
  if ev.code == "timeout" then return 504, "server_error", "timeout" end
  if ev.code == "prompt" then return 400, "invalid_request_error", nil end
  return 500, "server_error", nil
end

local function answer_whole(res, job, head)
  res:on_abort(function() job:cancel() end)
  local text, ev = job:wait()
  if not text then
    local status, kind, code = failure_of(ev)
    return oai_error(res, status, ev.message, kind, nil, code)
  end
  if ev.finish_reason == "cancelled" then return end
  head.object = "chat.completion"
  head.choices = {{index = 0, message = {role = "assistant", content = text}, logprobs = fb.json.null,
                   finish_reason = ev.finish_reason}}
  head.usage = usage(ev)
  return res:json(200, head)
end

local function answer_streamed(res, job, head, include_usage)
  local stream = res:stream(200, {["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-cache"})
  if not stream then return job:cancel() end
  stream:on_close(function() job:cancel() end)
  head.object = "chat.completion.chunk"
  local function chunk(delta, finish)
    head.choices = {{index = 0, delta = delta, logprobs = fb.json.null, finish_reason = finish or fb.json.null}}
    return stream:write("data: " .. fb.json.encode(head) .. "\n\n")
  end
  chunk({role = "assistant", content = ""})
  while true do
    local ev = job:next()
    if not ev then break end
    if ev.event == "delta" then chunk({content = ev.text}) end
    if ev.event == "error" then
      local _, kind, code = failure_of(ev)
      stream:write("data: " .. fb.json.encode({error = {message = ev.message, type = kind,
                                                        param = fb.json.null, code = code or fb.json.null}}) .. "\n\n")
      break
    end
    if ev.event == "done" then
      if ev.finish_reason == "cancelled" then break end
      chunk({}, ev.finish_reason)
      if include_usage then
        head.choices, head.usage = fb.json.array(), usage(ev)
        stream:write("data: " .. fb.json.encode(head) .. "\n\n")
      end
      stream:write("data: [DONE]\n\n")
      break
    end
  end
  stream:close()
end

-- mount(app, {data_dir =, model = the default base model, pool = a fastbrain.model_pool})
function M.mount(app, ctx)
  app:get("/v1/models", function(_, res)
    res:json(200, {object = "list", data = list_models(ctx)})
  end)

  app:post("/v1/chat/completions", function(req, res)
    local ok, body = pcall(req.json, req)
    if not ok or type(body) ~= "table" then return invalid(res, nil, "the body must be a JSON object") end
    if type(body.model) ~= "string" or body.model == "" then return invalid(res, "model", "model is required") end
    local target = resolve(ctx, body.model)
    if not target then
      return oai_error(res, 404, ("The model '%s' does not exist: GET /v1/models lists them"):format(body.model),
                       "invalid_request_error", "model", "model_not_found")
    end
    local messages, has_system, message = read_messages(body.messages)  -- or nil, param, message
    if not messages then return invalid(res, has_system, message) end
    local opts, param, why = read_options(body)
    if not opts then return invalid(res, param, why) end
    if body.stream ~= nil and type(body.stream) ~= "boolean" then return invalid(res, "stream", "stream must be a boolean") end
    local skill = target.skill and skills.read(ctx.data_dir, target.skill)
    if not has_system and skill and type(skill.system) == "string" and skill.system ~= "" then
      table.insert(messages, 1, {role = "system", content = skill.system})
    end
    opts.adapter = target.adapter
    local job, err, code = ctx.pool:submit(target.base, messages, opts)
    if not job then
      return oai_error(res, 503, err, "server_error", nil, code == "busy" and "overloaded" or nil, {["Retry-After"] = "1"})
    end
    local head = {id = completion_id(), created = os.time(), model = body.model,
                  system_fingerprint = "fastbrain-" .. fb.version}
    if body.stream then
      local include = type(body.stream_options) == "table" and body.stream_options.include_usage == true
      return answer_streamed(res, job, head, include)
    end
    return answer_whole(res, job, head)
  end, {timeout = (ctx.pool.deadline_ms or 120000) + 5000})
end

return M
