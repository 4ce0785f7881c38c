-- fastbrain.digest (engine/l_digest.c): sha256 against the standard's test vectors, fed whole
-- and piece by piece; fastbrain.fs's stat, lstat, symlink, readlink and lock that the Hub cache
-- uses.
local T = require "tests.lua.testing"
local digest = require "fastbrain.digest"
local fs = require "fastbrain.fs"

local ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
local EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
-- FIPS 180-2's two-block message and one million "a"s.
local TWO = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
local TWO_HEX = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
local MILLION_HEX = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

T.test("sha256 of whole strings", function()
  T.eq(digest.sha256("abc"), ABC)
  T.eq(digest.sha256(""), EMPTY)
  T.eq(digest.sha256(TWO), TWO_HEX)
end)

T.test("sha256 fed piece by piece equals the whole", function()
  local d = digest.new("sha256")
  for _ = 1, 1000 do d:update(string.rep("a", 1000)) end
  T.eq(d:hex(), MILLION_HEX)
  local e = digest.new()
  for i = 1, #TWO do e:update(TWO:sub(i, i)) end
  T.eq(e:hex(), TWO_HEX)
  T.eq(#digest.new():update("abc"):final(), 32)
end)

T.test("a finished digest and an unknown name raise", function()
  local d = digest.new()
  d:hex()
  T.raises(function() d:update("x") end, "already finished")
  T.raises(function() digest.new("nope") end, "unknown digest")
  T.matches(tostring(digest.new("sha1")), "SHA1")
end)

T.test("fs.stat, lstat, symlink, readlink, lock", function()
  local dir = os.tmpname()
  os.remove(dir)
  assert(fs.mkdir_p(dir .. "/blobs"))
  local f = assert(io.open(dir .. "/blobs/abc", "wb"))
  f:write("hello")
  f:close()
  assert(fs.mkdir_p(dir .. "/snap"))
  assert(fs.symlink("../blobs/abc", dir .. "/snap/f"))
  T.eq(fs.readlink(dir .. "/snap/f"), "../blobs/abc")
  T.eq(fs.lstat(dir .. "/snap/f").type, "link")
  local st = fs.stat(dir .. "/snap/f")
  T.eq(st.type, "file")
  T.eq(st.size, 5)
  T.eq(fs.stat(dir).type, "dir")
  local none, msg, code = fs.stat(dir .. "/missing")
  T.eq(none, nil)
  T.matches(msg, "missing")
  T.eq(code, "ENOENT")
  T.eq(select(2, fs.symlink("x", dir .. "/snap/f")) ~= nil, true)
  T.eq(fs.readlink(dir .. "/blobs/abc"), nil)
  local lock = assert(fs.lock(dir .. "/x.lock"))
  local refused, why, busy = fs.lock(dir .. "/x.lock")
  T.eq({refused, busy}, {nil, "busy"})
  T.matches(why, "x.lock: held by another download")
  lock:unlock()
  local _ <close> = assert(fs.lock(dir .. "/x.lock"))  -- free again: taken, and held to the end
  T.eq(select(3, fs.lock(dir .. "/nodir/x.lock")), "ENOENT")
  assert(fs.remove_tree(dir))
end)

T.run()
