-- Local stand-ins for the remote LLM APIs, on the engine's own HTTP server: the OpenAI/Groq
-- chat completions and the Anthropic Messages wire formats, with their status codes, error
-- bodies and rate-limit headers. Each test queues the answers it wants, or sets a responder
-- that answers whenever the queue is empty; requests are recorded.
local fb = require "fastbrain"
local router = require "fastbrain.router"

local M = {}

-- Answers in each API's shape.
function M.openai_ok(text, usage, headers)
  usage = usage or {prompt_tokens = 10, completion_tokens = 5}
  return {status = 200, headers = headers, json = {
    id = "chatcmpl-1", object = "chat.completion", model = "llama-3.1-8b-instant",
    choices = {{index = 0, message = {role = "assistant", content = text}, finish_reason = "stop"}},
    usage = {prompt_tokens = usage.prompt_tokens, completion_tokens = usage.completion_tokens,
             total_tokens = usage.prompt_tokens + usage.completion_tokens}}}
end

function M.openai_error(status, type_, code, message, headers)
  return {status = status, headers = headers,
          json = {error = {message = message, type = type_, code = code, param = fb.json.null}}}
end

function M.anthropic_ok(text, usage, headers)
  usage = usage or {input_tokens = 12, output_tokens = 6}
  return {status = 200, headers = headers, json = {
    id = "msg_1", type = "message", role = "assistant", model = "claude-3-5-haiku-20241022",
    content = {{type = "text", text = text}}, stop_reason = "end_turn", stop_sequence = fb.json.null,
    usage = usage}}
end

function M.anthropic_error(status, type_, message, headers)
  return {status = status, headers = headers,
          json = {type = "error", error = {type = type_, message = message}}}
end

-- Streaming answers (stream: true in the request), as each API frames them over SSE.
function M.openai_stream(text)
  local events = {}
  local function chunk(delta, finish)
    return {data = {id = "chatcmpl-1", object = "chat.completion.chunk", model = "llama-3.1-8b-instant",
                    choices = {{index = 0, delta = delta, finish_reason = finish or fb.json.null}}}}
  end
  events[1] = chunk({role = "assistant", content = ""})
  for piece in text:gmatch("%S+%s*") do events[#events + 1] = chunk({content = piece}) end
  events[#events + 1] = chunk(setmetatable({}, nil), "stop")
  events[#events + 1] = {data = "[DONE]"}
  return {status = 200, sse = events}
end

function M.anthropic_stream(text)
  local events = {
    {event = "message_start", data = {type = "message_start", message = {id = "msg_1", type = "message",
      role = "assistant", model = "claude-3-5-haiku-20241022", content = fb.json.array(),
      stop_reason = fb.json.null, usage = {input_tokens = 12, output_tokens = 1}}}},
    {event = "content_block_start", data = {type = "content_block_start", index = 0,
      content_block = {type = "text", text = ""}}},
    {event = "ping", data = {type = "ping"}},
  }
  for piece in text:gmatch("%S+%s*") do
    events[#events + 1] = {event = "content_block_delta", data = {type = "content_block_delta", index = 0,
      delta = {type = "text_delta", text = piece}}}
  end
  events[#events + 1] = {event = "content_block_stop", data = {type = "content_block_stop", index = 0}}
  events[#events + 1] = {event = "message_delta", data = {type = "message_delta",
    delta = {stop_reason = "end_turn", stop_sequence = fb.json.null}, usage = {output_tokens = 6}}}
  events[#events + 1] = {event = "message_stop", data = {type = "message_stop"}}
  return {status = 200, sse = events}
end

-- start() -> stand-in with .port, .base (http://127.0.0.1:port), :queue(path, answer...),
-- :respond(path, fn(req) -> answer), .requests (path -> list of {headers, body}), :close(),
-- :chain([names]) -> a provider chain on it.
-- path is "openai" or "anthropic".
function M.start()
  local s = {queues = {}, requests = {}, responders = {}}
  local app = router.new{timeout = 10000}
  local function handle(path)
    return function(req, res)
      local list = s.requests[path] or {}
      s.requests[path] = list
      list[#list + 1] = {headers = req.headers, body = req:json()}
      local answer = table.remove(s.queues[path] or {}, 1)
      if not answer and s.responders[path] then answer = s.responders[path](req) end
      if not answer then return res:json(500, {error = {message = "stand-in: nothing queued"}}) end
      if answer.delay then fb.sleep(answer.delay) end
      if answer.raw then return res:send(answer.status, answer.raw, answer.headers) end
      if answer.sse then
        local stream = res:sse(answer.headers)
        for _, ev in ipairs(answer.sse) do stream:send(ev.event, ev.data) end
        return stream:close()
      end
      res:json(answer.status, answer.json, answer.headers)
    end
  end
  app:get("/health", function(_, res) res:json(200, {status = "ok"}) end)
  app:post("/openai/v1/chat/completions", handle("openai"))
  app:post("/v1/messages", handle("anthropic"))
  s.port = assert(app:listen{host = "127.0.0.1", port = 0})
  s.base = "http://127.0.0.1:" .. s.port
  function s:queue(path, ...)
    self.queues[path] = self.queues[path] or {}
    for _, a in ipairs({...}) do table.insert(self.queues[path], a) end
  end
  function s:respond(path, fn) self.responders[path] = fn end
  function s:reset() self.queues, self.requests, self.responders = {}, {}, {} end
  function s.close() app:close(0) end
  -- A provider chain on this stand-in: Groq's wire format, then Anthropic's (or only the
  -- providers named), with test keys and no retries.
  function s:chain(names)
    local keys = require("fastbrain.keys").new{getenv = function() return "sk-test-0000" end}
    local all = {
      groq = require("fastbrain.providers.openai").new{name = "groq", keys = keys, key_env = "GROQ_API_KEY",
        base_url = self.base .. "/openai/v1", model = "llama-3.1-8b-instant"},
      anthropic = require("fastbrain.providers.anthropic").new{name = "anthropic", keys = keys,
        key_env = "ANTHROPIC_API_KEY", base_url = self.base, model = "claude-3-5-haiku-20241022"},
    }
    local providers = {}
    for _, name in ipairs(names or {"groq", "anthropic"}) do providers[#providers + 1] = all[name] end
    return require("fastbrain.fallback").new{retries = 0, providers = providers}
  end
  return s
end

return M
