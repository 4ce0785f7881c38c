-- fastbrain.api.providers: GET /api/providers, each data provider's state for the dashboard:
-- ok, cooling down until T, budget used/limit today, last error. Never keys.
local M = {}

-- mount(app, chain): chain is a fastbrain.fallback chain.
function M.mount(app, chain)
  app:get("/api/providers", function(_, res)
    res:json(200, {providers = chain:status()})
  end)
end

return M
