-- scripts/serve.lua: the dashboard server behind `fastbrain serve`. Serves web/ (when the
-- dashboard is there) and the API routes (lua/fastbrain/api/*.lua); owns the job registry on
-- the data directory (opened at start, closed at shutdown); installs the bundled skills into a
-- fresh data directory; stops gracefully on SIGINT/SIGTERM. Usage: serve.lua [--host H]
-- [--port P] [--data-dir D] [--token-file PATH | --token T] [--model DIR|NAME|ORG/NAME[@REV]]
-- [--worker CMD (default: fastbrain worker)]
-- [--max-running N] [--stale-after S] [--kill-grace S] [--max-connections N] (docs/jobs.md)
-- [--executor local|slurm] [--slurm-partition P] [--slurm-account A] [--slurm-time T]
-- [--slurm-mem MB] (docs/slurm.md)
-- Returns the app, so a test may run it in-process with loadfile(...)("--port", "0").
local fb = require "fastbrain"
local args = require "fastbrain.args"
local models = require "fastbrain.models"
local router = require "fastbrain.router"

local USAGE = "usage: fastbrain serve [--host HOST] [--port PORT] [--data-dir DIR] [--token-file PATH]\n" ..
              "                       [--token TOKEN (seen by other users in ps: prefer FASTBRAIN_TOKEN)]\n" ..
              "                       [--model DIR|NAME|ORG/NAME[@REVISION]] [--worker CMD] [--max-running N]\n" ..
              "                       [--stale-after SECONDS] [--kill-grace SECONDS] [--max-connections N]\n" ..
              "                       [--executor local|slurm] [--slurm-partition P] [--slurm-account A]\n" ..
              "                       [--slurm-time LIMIT] [--slurm-mem MB]"
local OPTIONS = {host = "string", port = "string", data_dir = "string", token = "string",
                 token_file = "string", model = "string", worker = "string", max_running = "string",
                 stale_after = "string", kill_grace = "string", max_connections = "string",
                 executor = "string", slurm_partition = "string", slurm_account = "string",
                 slurm_time = "string", slurm_mem = "string"}
-- Options that are numbers > 0 (integers where `integer`); absent: the engine's default.
local NUMBERS = {max_running = "integer", stale_after = "number", kill_grace = "number",
                 max_connections = "integer", slurm_mem = "integer"}
local GRACE_MS = 3000

-- argv -> options, or nil and a message (and true when the message is the asked-for usage).
local function parse(argv)
  local opts, given, help = args.parse(argv, {options = OPTIONS, usage = USAGE, defaults = {
    host = "127.0.0.1",
    port = 8215,
    data_dir = os.getenv("FASTBRAIN_HOME") or "./fastbrain-data",
    token = os.getenv("FASTBRAIN_TOKEN"),
    model = os.getenv("FASTBRAIN_MODEL") or fb.root .. "/share/models/tiny",
    executor = os.getenv("FASTBRAIN_EXECUTOR"),  -- local (nil) or slurm: docs/slurm.md
  }})
  if not opts then return nil, given, help end
  opts.token_on_argv = given.token
  local port = math.tointeger(tonumber(opts.port))
  if not port or port < 0 or port > 65535 then
    return nil, ("--port must be an integer 0..65535, got '%s'"):format(tostring(opts.port))
  end
  opts.port = port
  for key, kind in pairs(NUMBERS) do
    if opts[key] then
      local v = tonumber(opts[key])
      if kind == "integer" then v = math.tointeger(v) end
      if not v or v <= 0 then
        return nil, ("--%s must be %s > 0, got '%s'"):format(key:gsub("_", "-"),
          kind == "integer" and "an integer" or "a number", opts[key])
      end
      opts[key] = v
    end
  end
  if opts.token == "" then opts.token = nil end
  return opts
end

-- The token in a file only its owner may read (mode 0600 or stricter), without the line end.
local function read_token_file(path)
  local mode, err = fb.fs.mode(path)
  if not mode then return nil, ("--token-file %s: %s"):format(path, err) end
  if mode & 63 ~= 0 then  -- any group or other bit
    return nil, ("--token-file %s: mode %04o lets other users read it; chmod 600 %s"):format(path, mode, path)
  end
  local f, ferr = io.open(path, "rb")
  if not f then return nil, "--token-file " .. ferr end
  local token = f:read("a"):match("^%s*(.-)%s*$")
  f:close()
  if token == "" then return nil, ("--token-file %s: the file is empty"):format(path) end
  return token
end

-- opts.token from --token-file, --token or FASTBRAIN_TOKEN (in that order), or nil and why.
local function resolve_token(opts)
  if opts.token_file then
    if opts.token_on_argv then return nil, "give --token or --token-file, not both" end
    local token, err = read_token_file(opts.token_file)
    if not token then return nil, err end
    opts.token = token
  elseif opts.token_on_argv and opts.token then
    fb.log.warn("--token is visible to every user of this machine (ps, /proc); " ..
                "set FASTBRAIN_TOKEN or use --token-file instead")
  end
  return true
end

local function loopback(host)
  return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local function file_exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function main(argv)
  local opts, err, help = parse(argv)
  if not opts then return nil, err, help end
  local ok, terr = resolve_token(opts)
  if not ok then return nil, terr end
  if not loopback(opts.host) and not opts.token then
    return nil, ("refusing to serve on %s without a token: set FASTBRAIN_TOKEN or pass --token-file")
      :format(opts.host)
  end

  -- The default base model: a directory, a bundled or data-directory model's name, or ORG/NAME
  -- in the Hugging Face cache; one not there stops the server before it serves.
  local model, merr = models.path(opts.model, opts.data_dir)
  if not model then return nil, "--model: " .. merr end
  opts.model = model

  local worker
  if opts.worker then
    worker = {}
    for word in opts.worker:gmatch("%S+") do worker[#worker + 1] = word end
  end
  local registry, jerr = fb.jobs.open{data_dir = opts.data_dir, worker = worker,
                                      max_running = opts.max_running,
                                      stale_after = opts.stale_after, kill_grace = opts.kill_grace,
                                      executor = opts.executor,
                                      slurm = {partition = opts.slurm_partition, account = opts.slurm_account,
                                               time = opts.slurm_time, mem_mb = opts.slurm_mem}}
  if not registry then return nil, jerr end
  require("fastbrain.skills").install_bundled(opts.data_dir, fb.root .. "/share")
  require("fastbrain.skills").sweep(opts.data_dir)  -- what a killed server left
  require("fastbrain.api.scenarios").install_bundled(opts.data_dir, fb.root .. "/share")

  local app = router.new()
  app.data_dir = opts.data_dir
  app:use(router.logger())
  local pool = require("fastbrain.model_pool").new()
  app:get("/api/health", function(_, res)
    res:json(200, {status = "ok", version = fb.version, models = pool:status()})
  end)
  local chain = require("fastbrain.providers").default_chain{data_dir = opts.data_dir,
                                                              keys_file = os.getenv("FASTBRAIN_KEYS")}
  require("fastbrain.api.providers").mount(app, chain)
  require("fastbrain.api.generate").mount(app, {data_dir = opts.data_dir, chain = chain})
  local training = require "fastbrain.api.training"
  require("fastbrain.api.skills").mount(app, {data_dir = opts.data_dir, is_live = training.is_live,
                                              model = opts.model})
  training.mount(app, {data_dir = opts.data_dir, model = opts.model, executor = opts.executor})
  require("fastbrain.api.scenarios").mount(app, {data_dir = opts.data_dir, chain = chain})
  require("fastbrain.api.estimate").mount(app, {data_dir = opts.data_dir, model = opts.model})
  require("fastbrain.api.jobs").mount(app)
  require("fastbrain.api.pulls").mount(app)
  require("fastbrain.api.models").mount(app, {data_dir = opts.data_dir,
                                             default = models.id(opts.model, opts.data_dir)})
  require("fastbrain.api.adapters").mount(app, {data_dir = opts.data_dir, model = opts.model,
                                                is_live = training.is_live, pool = pool})
  require("fastbrain.api.exports").mount(app, {data_dir = opts.data_dir})
  require("fastbrain.api.openai").mount(app, {data_dir = opts.data_dir, model = opts.model, pool = pool})
  local runs = require("fastbrain.scenario_runs").new{data_dir = opts.data_dir, pool = pool, model = opts.model,
                                                      chain = chain}
  require("fastbrain.api.scenario_runs").mount(app, {data_dir = opts.data_dir, runs = runs})
  runs:resume_saved()
  local web = fb.root .. "/web"
  if file_exists(web .. "/index.html") then app:static("/", web) end

  local port, lerr = app:listen{host = opts.host, port = opts.port, token = opts.token,
                                limits = {max_connections = opts.max_connections}}
  if not port then
    registry:close()
    return nil, lerr
  end
  local shown = opts.host:find(":", 1, true) and "[" .. opts.host .. "]" or opts.host
  print(("fastbrain serving on http://%s:%d (data: %s)"):format(shown, port, opts.data_dir))
  if opts.token then  -- as Jupyter does: the link trades the token for a cookie, then drops it
    local link = (opts.host == "0.0.0.0" or opts.host == "::") and "127.0.0.1" or shown
    print(("dashboard: http://%s:%d/?token=%s"):format(link, port, opts.token))
  end
  io.stdout:flush()

  local stopping = false
  local function stop()  -- a second signal does not wait for the grace period
    if stopping then fb.exit(1) return end
    stopping = true
    fb.log.info("shutting down (grace %d ms; signal again to stop now)", GRACE_MS)
    registry:close()
    app:close(GRACE_MS, function()
      pool:close()
      fb.exit(0)
    end)
  end
  fb.on_signal("int", stop)
  fb.on_signal("term", stop)
  app.registry, app.pool = registry, pool
  return app
end

local app, err, help = main({...})
if help then
  print(err)
  fb.exit(0)
elseif not app then
  io.stderr:write("fastbrain serve: ", err, "\n")
  fb.exit(2)
end
return app
