-- fastbrain.api.providers: GET /api/providers, each data provider's state for the dashboard:
-- ok, cooling down until T, budget used/limit today, last error, and its API key's variable:
-- where it is set (environment or keys file) or why not, never its value. POST
-- /api/providers/keys {name, value} writes one key into the keys file (fastbrain.keys, mode
-- 0600), only while the server listens on loopback: a key typed into a page goes no further
-- than this machine. Neither the value nor the body is ever logged or sent back.
local fb = require "fastbrain"
local router = require "fastbrain.router"
local keys_mod = require "fastbrain.keys"

local M = {}

local function loopback(host)
  return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- The chain's providers that take a key, by variable name.
local function key_vars(chain)
  local vars = {}
  for _, p in ipairs(chain.providers) do
    if p.key_env then vars[p.key_env] = p end
  end
  return vars
end

-- What the dashboard may know of the keys: the file, whether the form is offered, and each
-- variable's source or why it is unset.
local function keys_status(app, chain)
  local keys = chain.keys
  if not keys then return fb.json.null end
  local vars = fb.json.array()
  for _, p in ipairs(chain.providers) do
    if p.key_env then
      local source, why = keys:source(p.key_env)
      vars[#vars + 1] = {name = p.key_env, provider = p.name, source = source or fb.json.null,
                         problem = why or fb.json.null}
    end
  end
  return {file = keys.file or fb.json.null, form = keys.file ~= nil and loopback(app.host or ""), vars = vars}
end

-- mount(app, chain): chain is a fastbrain.fallback chain; chain.keys (fastbrain.keys) its keys.
function M.mount(app, chain)
  app:get("/api/providers", function(_, res)
    res:json(200, {providers = chain:status(), keys = keys_status(app, chain)})
  end)

  app:post("/api/providers/keys", function(req, res)
    local status = keys_status(app, chain)
    if not (status ~= fb.json.null and status.form) then
      router.fail(403, "keys are set here only on a server listening on loopback with a keys file: " ..
                       "set them in the environment or the keys file instead")
    end
    local body = req:json()
    local vars = key_vars(chain)
    local fields = {}
    if type(body) ~= "table" or not vars[body.name] then
      local names = {}
      for name in pairs(vars) do names[#names + 1] = name end
      table.sort(names)
      fields.name = "must be one of " .. table.concat(names, ", ")
    end
    fields.value = keys_mod.check_value(type(body) == "table" and body.value)
    if next(fields) then return res:json(400, {error = "invalid key", fields = fields}) end
    if chain.keys:source(body.name) == "environment" then
      router.fail(409, body.name .. " is set in the environment, which wins over the keys file")
    end
    local ok, err = chain.keys:set(body.name, body.value)
    if not ok then
      fb.log.error("keys: %s", err)
      router.fail(500, "cannot write the keys file")
    end
    -- A provider refused for a bad key before gets another chance with the new one.
    local st = chain.state[vars[body.name].name]
    st.unusable, st.last_error = nil, nil
    res:json(200, {providers = chain:status(), keys = keys_status(app, chain)})
  end)
end

return M
