-- fastbrain.duration: a number of seconds as people read it, the same words as the dashboard's
-- web/duration.js: "45 s", "1 min 20 s", "2 h 5 min"; "—" when it is not a number.
--   text(seconds) -> string
local M = {}

function M.text(s)
  if type(s) ~= "number" or s ~= s or s < 0 or s == math.huge then return "—" end
  local n = math.floor(s + 0.5)
  if n < 60 then return ("%d s"):format(n) end
  if n < 3600 then
    local sec = n % 60
    return sec == 0 and ("%d min"):format(n // 60) or ("%d min %d s"):format(n // 60, sec)
  end
  local min = (n % 3600) // 60
  return min == 0 and ("%d h"):format(n // 3600) or ("%d h %d min"):format(n // 3600, min)
end

return M
