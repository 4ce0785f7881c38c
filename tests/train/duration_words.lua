-- duration_words.lua: prints fastbrain.duration's words for a few times, |-separated, for
-- train_cli.sh to compare with what a person would write.
local duration = require "fastbrain.duration"
local out = {}
for _, s in ipairs{0, 44.6, 60, 80, 3599, 3600, 7500, -1, 0 / 0} do out[#out + 1] = duration.text(s) end
print(table.concat(out, "|"))
