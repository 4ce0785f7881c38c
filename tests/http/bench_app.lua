-- tests/http/bench_app.lua: the fastbrain side of tests/bench/bench_http.sh. One route that
-- answers a fixed job status as JSON, encoded per request; prints its port; stops on SIGTERM.
local fb = require "fastbrain"
local router = require "fastbrain.router"

local app = router.new()
app:get("/api/training/status/:skill", function(req, res)
  res:json(200, {skill = req.params.skill, status = "running", step = 120, total_steps = 300,
                 epoch = 2, total_epochs = 3, loss = 1.2345, eta_s = 95})
end)
local port = assert(app:listen{host = "127.0.0.1", port = tonumber((...)) or 0})
print("port " .. port)
io.stdout:flush()
fb.on_signal("term", function() app:close(0, function() fb.exit(0) end) end)
