-- fastbrain.api.estimate: GET /api/training/estimate/:skill[?model=ID], what a run of the skill
-- would cost on this machine before it starts (fastbrain.estimate: tokens per epoch with the
-- model's tokenizer, steps, peak memory, time on the CPU and GPU, whether it fits, warnings);
-- POST the same with a body of spec overrides, as POST /api/train-skill/:skill takes them.
-- ID is a model id (fastbrain.models); absent, the skill's base model. The work, a first
-- calibration of the model's shape included, runs in a child (fastbrain.estimate_queue).
local fb = require "fastbrain"
local estimate_queue = require "fastbrain.estimate_queue"
local models = require "fastbrain.models"
local router = require "fastbrain.router"
local skills = require "fastbrain.api.skills"
local training = require "fastbrain.api.training"
local train = require "fastbrain.train"

local M = {}

-- mount(app, {data_dir =, model = the default base model})
function M.mount(app, ctx)
  local data_dir = ctx.data_dir

  local function handler(req, res)
    local skill = skills.require(data_dir, req.params.skill)
    local overrides = req.method == "POST" and req.body ~= "" and req:json() or {}
    local errors = train.check_request(overrides)
    if errors then return skills.bad_fields(res, "invalid training spec", errors) end
    local id, name = req.query.model, nil
    if id then
      local err
      name, err = models.path(id, data_dir)
      if not name then router.fail(404, err) end
    end
    local spec = training.spec(data_dir, ctx.model, skill, overrides, name)
    if not fb.fs.mode(spec.data) then router.fail(422, "the skill has no examples yet") end
    spec.skill = nil -- the registry's, not the trainer's
    local status, body = estimate_queue.get(spec)
    if status == 200 then body.estimate.model = id or models.id(spec.model, data_dir) end
    res:json(status, body)
  end
  local opts = {timeout = estimate_queue.TIMEOUT_MS + 5000}
  app:get("/api/training/estimate/:skill", handler, opts)
  app:post("/api/training/estimate/:skill", handler, opts)
end

return M
