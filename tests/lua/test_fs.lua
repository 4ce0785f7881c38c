-- fastbrain.fs: atomic writes, capped reads, listings, mkdir -p, modes, and their errors.
local T = require "tests.lua.testing"
local fs = require("fastbrain").fs

local dir = os.tmpname()
os.remove(dir)

T.test("mkdir_p, write_atomic, read", function()
  T.eq(fs.mkdir_p(dir .. "/a/b/c"), true)
  T.eq(fs.mkdir_p(dir .. "/a/b/c"), true)  -- existing is fine
  T.eq(fs.write_atomic(dir .. "/a/f.txt", "one\0two"), true)
  T.eq(fs.read(dir .. "/a/f.txt"), "one\0two")
  T.eq(fs.write_atomic(dir .. "/a/f.txt", "replaced"), true)
  T.eq(fs.read(dir .. "/a/f.txt"), "replaced")
  T.eq(fs.mode(dir .. "/a/f.txt"), tonumber("644", 8))
end)

T.test("list is sorted and leaves out . and ..", function()
  for _, name in ipairs({"zeta", "alpha", "Mid"}) do fs.write_atomic(dir .. "/a/b/" .. name, "") end
  T.eq(fs.list(dir .. "/a/b"), {"Mid", "alpha", "c", "zeta"})
  T.eq(fs.list(dir .. "/a/b/c"), {})
end)

T.test("failures return nil and a message naming the path", function()
  local v, err = fs.read(dir .. "/missing")
  T.eq(v, nil)
  T.matches(err, "missing")
  v, err = fs.read(dir .. "/a/f.txt", 3)
  T.eq(v, nil)
  T.matches(err, "f%.txt")
  v, err = fs.list(dir .. "/nope")
  T.eq(v, nil)
  T.matches(err, "/nope: No such file or directory$")
  T.eq(fs.mode(dir .. "/nope"), nil)
  v, err = fs.write_atomic(dir .. "/no/such/dir/f", "x")
  T.eq(v, nil)
  T.matches(err, "no/such/dir")
  v, err = fs.mkdir_p(dir .. "/a/f.txt/sub")
  T.eq(v, nil)
  T.matches(err, "/a/f%.txt: exists and is not a directory$")
  T.raises(function() fs.read(dir, -1) end, "max_bytes must be >= 0")
end)

T.test("remove_tree removes a tree but not what a link points to", function()
  fs.mkdir_p(dir .. "/keep")
  fs.write_atomic(dir .. "/keep/precious", "x")
  fs.mkdir_p(dir .. "/t/a/b")
  fs.write_atomic(dir .. "/t/a/b/f", "y")
  assert(os.execute(("ln -s %s/keep %s/t/link"):format(dir, dir)))
  T.eq(fs.remove_tree(dir .. "/t"), true)
  T.eq(fs.mode(dir .. "/t"), nil)
  T.eq(fs.read(dir .. "/keep/precious"), "x")
  local v, err = fs.remove_tree(dir .. "/t")
  T.eq(v, nil)
  T.matches(err, "/t: No such file or directory$")
  T.raises(function() fs.remove_tree("/") end, "refusing to remove the root")
end)

T.test("clean up", function() os.execute("rm -rf " .. dir) end)

T.run()
