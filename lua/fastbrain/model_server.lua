-- fastbrain.model_server: the long-lived process that keeps one base model (and its recently
-- used adapters) loaded and answers conversations for the server (`fastbrain model-server
-- --model M --port P`, started by fastbrain.model_pool; its token on stdin). It connects back
-- to 127.0.0.1:P twice: requests come on the first, events go out on the second, one JSON
-- object a line (docs/serving.md has the protocol). Answers in flight take turns every few
-- tokens, and a cancel is seen within SLICE_MS. It exits when the server's connection closes.
local fb = require "fastbrain"
local cosocket = require "fastbrain.cosocket"
local lines = require "fastbrain.lines"
local model = require "fastbrain.model"

local M = {}

-- An answer gives the loop a turn (reading a cancel, letting another answer run) every SLICE_MS
-- of work. The turn is a 1 ms sleep: libuv 1.44 (Debian 12) runs a 0 ms timer started inside a
-- timer callback in the same pass, before any I/O, so sleep(0) would starve the sockets.
local SLICE_MS = 20

local CHAT_OPTS = {adapter = true, max_tokens = true, temperature = true, top_p = true, top_k = true,
                   seed = true, repetition_penalty = true, stop_text = true, ignore_eos = true}

local function engine_opts(opts)
  local out = {}
  for k, v in pairs(type(opts) == "table" and opts or {}) do
    if CHAT_OPTS[k] then out[k] = v end
  end
  return out
end

-- One answer, token by token; every SLICE_MS the loop reads requests (a cancel) and the other
-- answers take their turn.
local function answer(m, events, req, cancelled)
  local id, started = req.id, fb.now()
  local function done(finish, a)
    cancelled[id] = nil
    events:send{id = id, event = "done", finish_reason = finish, prompt_tokens = a and a.prompt_tokens or 0,
                completion_tokens = a and a.completion_tokens or 0, ms = fb.now() - started}
  end
  if cancelled[id] then return done("cancelled") end
  local ok, a, err = pcall(m.chat, m, req.messages, engine_opts(req.opts))
  if not ok or not a then
    cancelled[id] = nil
    return events:send{id = id, event = "error", code = "prompt", message = tostring(ok and err or a)}
  end
  events:send{id = id, event = "start", prompt_tokens = a.prompt_tokens, prompt_ms = fb.now() - started}
  local turn = fb.now()
  while true do
    local piece, finish, gerr = a:next()
    if not piece then
      cancelled[id] = nil
      return events:send{id = id, event = "error", message = gerr}
    end
    if piece ~= "" then events:send{id = id, event = "delta", text = piece} end
    if finish then return done(finish, a) end
    if fb.now() - turn >= SLICE_MS then
      fb.sleep(1)
      turn = fb.now()
    end
    if cancelled[id] then
      a:close()
      return done("cancelled", a)
    end
  end
end

-- Requests already read all count before an answer starts (after(0) runs once the reader waits),
-- so a cancel that came with its request stops it before its prompt is read.
local function serve(m, requests, events)
  local cancelled = {}
  while true do
    local req, err = requests:receive()
    if not req then return err == "closed" and 0 or 1 end
    if req.op == "chat" then
      fb.timer.after(0, function() fb.spawn(answer, m, events, req, cancelled) end)
    elseif req.op == "cancel" then
      cancelled[req.id] = true
    end
  end
end

local function connect(port, token, channel)
  local sock, err = cosocket.connect("127.0.0.1", port, {timeout = 10000})
  if not sock then return nil, err end
  sock:settimeout(nil)
  local ok, serr = lines.writer(sock):send{token = token, channel = channel}
  if not ok then return nil, serr end
  return sock
end

-- The body of `fastbrain model-server --model M --port P [--device D]`.
function M.main(args)
  local o = {}
  for i = 1, #args, 2 do o[(args[i] or ""):gsub("^%-%-", "")] = args[i + 1] end
  local port = math.tointeger(tonumber(o.port))
  if not o.model or not port then
    io.stderr:write("usage: fastbrain model-server --model M --port P [--device D] (token on stdin)\n")
    return 2
  end
  local token = io.read("l")
  local req_sock, err = connect(port, token, "requests")
  local ev_sock, eerr
  if req_sock then ev_sock, eerr = connect(port, token, "events") end
  if not ev_sock then
    io.stderr:write("fastbrain model-server: ", tostring(err or eerr), "\n")
    return 1
  end
  local events = lines.writer(ev_sock)
  local m, lerr = model.load(o.model, {device = o.device})
  if not m then
    events:send{event = "failed", message = lerr}
    return 1
  end
  local info = m:info()
  events:send{event = "ready", model = o.model, architecture = info.architecture,
              parameters = info.parameters, device = info.device, template = info.template,
              context = info.max_position_embeddings}
  return serve(m, lines.reader(req_sock), events)
end

return M
