-- The Hub stand-in (tests/lua/hub_standin.lua) as a process of its own, for the CLI test:
--   fastbrain run tests/hub/standin_server.lua ENDPOINT_FILE [SLOW]
-- serves org/llama (a sharded model; shard 2 of 3 MB from the CDN port), org/gated (token
-- hf_cli_token), org/gpt2 (an architecture the engine lacks) and org/tiny (the bundled model's
-- own files, weights from the CDN port: a model that trains); writes its endpoint to
-- ENDPOINT_FILE once listening. SLOW: the CDN sends 32 kB every 10 ms, so a signal lands in the
-- middle of a file. Runs until killed.
local standin = require "tests.lua.hub_standin"

local endpoint_file, slow = arg[1], arg[2] == "slow"
local srv = standin.start()
local files = standin.llama_files({shard2 = 3 * 1024 * 1024 + 5})
srv:add_repo("org/llama", {commit = string.rep("1a", 20), files = files})
srv:add_repo("org/bar", {commit = string.rep("2b", 20), files = standin.llama_files()})
srv:add_repo("org/gated", {commit = string.rep("3c", 20), files = standin.llama_files(), gated = "hf_cli_token"})
srv:add_repo("org/gpt2", {commit = string.rep("4d", 20), files = standin.llama_files({arch = "GPT2LMHeadModel"})})
local fb = require "fastbrain"
local tiny = {}
for _, name in ipairs(fb.fs.list(fb.root .. "/share/models/tiny")) do
  local data = assert(fb.fs.read(fb.root .. "/share/models/tiny/" .. name))
  tiny[name] = name:match("%.safetensors$") and {data = data, lfs = true, via = "cdn"} or data
end
srv:add_repo("org/tiny", {commit = string.rep("5e", 20), files = tiny})
if slow then srv.throttle = {bytes = 32 * 1024, every_ms = 10} end
local f = assert(io.open(endpoint_file .. ".tmp", "w"))
f:write(srv.endpoint)
f:close()
assert(os.rename(endpoint_file .. ".tmp", endpoint_file))
