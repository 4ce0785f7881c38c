-- fastbrain.reply: pieces never split a UTF-8 character or what may begin a stop string, a stop
-- string ends the text before it (even across tokens), and finish hands out what was held.
local T = require "tests.lua.testing"
local reply = require "fastbrain.reply"

-- Tokens that are byte strings; decode concatenates them.
local function bytes_of(tokens)
  return function(ids)
    local out = {}
    for i, id in ipairs(ids) do out[i] = tokens[id] end
    return table.concat(out)
  end
end

local function feed(r, ids)
  local pieces = {}
  for _, id in ipairs(ids) do
    local piece, stopped = r:push(id)
    pieces[#pieces + 1] = piece
    if stopped then return pieces, true end
  end
  return pieces, false
end

T.test("a character split over tokens comes out whole", function()
  local r = reply.new(bytes_of({"caf", "\xC3", "\xA9 ok", "\xE2\x82", "\xAC"}))
  local pieces = feed(r, {1, 2, 3, 4, 5})
  T.eq(pieces, {"caf", "", "\xC3\xA9 ok", "", "\xE2\x82\xAC"})
  T.eq(r:finish(), "")
end)

T.test("a stop string ends the text before it, across tokens", function()
  local r = reply.new(bytes_of({"Hello", " wor", "ld\n", "User", ":", " more"}), {"\nUser:"})
  local pieces, stopped = feed(r, {1, 2, 3, 4, 5, 6})
  T.eq(stopped, true)
  T.eq(table.concat(pieces), "Hello world")
  T.eq(pieces[3], "ld")  -- the newline waited: it may begin the stop string
  T.eq(r.text, "Hello world")
end)

T.test("held text that turns out not to be a stop comes out", function()
  local r = reply.new(bytes_of({"a\n", "Use", "ful"}), {"\nUser:"})
  local pieces, stopped = feed(r, {1, 2, 3})
  T.eq(stopped, false)
  T.eq(pieces, {"a", "", "\nUseful"})
  local r2 = reply.new(bytes_of({"b\nUs"}), {"\nUser:"})
  T.eq({r2:push(1)}, {"b", false})
  T.eq(r2:finish(), "\nUs")  -- nothing follows: what was held is text
  T.eq(r2.text, "b\nUs")
end)

T.test("the earliest of several stop strings wins", function()
  local r = reply.new(bytes_of({"one. two! three"}), {"!", "."})
  T.eq({r:push(1)}, {"one", true})
end)

T.run()
