-- fastbrain.answer: a model's answer to one prompt, computed by `fastbrain generate` in a child
-- process (fastbrain.process, no shell), so the server's loop keeps serving while the model
-- works (generation in-process would hold the loop for seconds, and the router stops a
-- handler that does). The child is this very binary.
local process = require "fastbrain.process"

-- Answers shown to people are greedy with a mild repetition penalty: a small model loops
-- without one (the trainer's live samples use the same, spec samples.repetition_penalty).
local M = {REPETITION_PENALTY = 1.2}
local EXE = process.exepath()

-- start(model_dir, prompt, {adapter =, system =, max_tokens =, temperature =,
-- repetition_penalty =, timeout_ms = 120000}) -> pending | nil, err: the child is running; it
-- is killed at the timeout.
function M.start(model_dir, prompt, opts)
  local argv = {EXE, "generate", "--model", model_dir, "--prompt", prompt,
                "--max-tokens", tostring(opts.max_tokens or 128),
                "--repetition-penalty", tostring(opts.repetition_penalty or M.REPETITION_PENALTY)}
  for _, o in ipairs({{"adapter", "--adapter"}, {"system", "--system"}, {"temperature", "--temperature"}}) do
    if opts[o[1]] then argv[#argv + 1] = o[2]; argv[#argv + 1] = tostring(opts[o[1]]) end
  end
  local p, err = process.spawn{argv = argv, timeout_ms = opts.timeout_ms or 120000}
  if not p then return nil, "cannot start fastbrain generate: " .. err end
  return p
end

-- wait(pending) -> text | nil, err (the child's own message). Call it from a coroutine.
function M.wait(p)
  local r = p:wait()
  if r.timed_out then return nil, "fastbrain generate: no answer in time" end
  if r.signal then return nil, "fastbrain generate: killed by signal " .. r.signal end
  -- The child's message is its last line on stderr (log lines come before it).
  if r.code ~= 0 then
    local last = r.stderr:match("([^\n]*)\n*$")
    return nil, last ~= "" and last or "fastbrain generate: exit status " .. r.code
  end
  return (r.stdout:gsub("\n$", ""))
end

return M
