-- fastbrain.json: round trips, numbers, strings, errors with their messages, limits.
local T = require "tests.lua.testing"
local json = require("fastbrain").json
local encode, decode = json.encode, json.decode

T.test("objects and arrays round trip, keys sorted", function()
  local s = '{"a":1,"b":[true,false,null],"c":{"d":"x"},"e":[],"f":{}}'
  T.eq(encode(decode(s)), s)
  T.eq(encode({b = 2, a = 1, c = {1, 2, 3}}), '{"a":1,"b":2,"c":[1,2,3]}')
end)

T.test("empty array and empty object stay apart", function()
  local v = decode('{"list":[],"map":{}}')
  T.eq(json.is_array(v.list), true)
  T.eq(json.is_array(v.map), false)
  T.eq(encode(v), '{"list":[],"map":{}}')
  T.eq(encode({}), "{}")
  T.eq(encode(json.array()), "[]")
  T.eq(encode(json.array({1, 2})), "[1,2]")
  T.eq(encode({items = json.array({})}), '{"items":[]}')
end)

T.test("null is a unique sentinel and keeps array length", function()
  local v = decode("[1,null,3]")
  T.eq(#v, 3)
  T.eq(v[2] == json.null, true)
  T.eq(encode(v), "[1,null,3]")
  T.eq(decode("null") == json.null, true)
  T.eq(encode(nil), "null")
end)

T.test("integers stay integers, floats stay floats", function()
  T.eq(decode("42"), 42)
  T.eq(math.type(decode("42")), "integer")
  T.eq(math.type(decode("42.0")), "float")
  T.eq(math.type(decode("4e1")), "float")
  T.eq(decode("-0"), 0)
  T.eq(decode("9223372036854775807"), math.maxinteger)
  T.eq(decode("-9223372036854775808"), math.mininteger)
  T.eq(decode("9223372036854775808"), 9223372036854775808.0)
  T.eq(math.type(decode("9223372036854775808")), "float")
  T.eq(math.type(decode("-9223372036854775809")), "float")
  T.eq(encode(math.maxinteger), "9223372036854775807")
  T.eq(encode(math.mininteger), "-9223372036854775808")
  T.eq(encode(1.0), "1.0")
  T.eq(encode(-0.5), "-0.5")
  T.eq(encode(0.1), "0.1")
  T.eq(encode(1e300), "1e+300")
  T.eq(encode(1/3), "0.3333333333333333")
  for _, x in ipairs({0.1, 1/3, 2^53 + 1.0, 1e-300, 123456.789, -1.5e-7}) do
    T.eq(decode(encode(x)), x, "round trip of " .. tostring(x))
  end
  T.eq(decode(encode({n = 2^62})).n, 2^62)
end)

T.test("string escapes", function()
  T.eq(decode([["\"\\\/\b\f\n\r\t"]]), "\"\\/\b\f\n\r\t")
  T.eq(encode("\"\\\b\f\n\r\t\1\31"), [["\"\\\b\f\n\r\t\u0001\u001f"]])
  T.eq(decode([["\u00e9\u4e2d"]]), "é中")
  T.eq(encode("é中😀"), '"é中😀"')
  T.eq(decode('"a\\u0000b"'), "a\0b")
  T.eq(encode("a\0b"), [["a\u0000b"]])
end)

T.test("surrogate pairs decode to one code point", function()
  T.eq(decode([["\ud83d\ude00"]]), "😀")
  T.eq(decode([["\uD834\uDD1E"]]), "𝄞")
end)

-- decode errors: input -> exact message
local decode_errors = {
  {"", "json: unexpected end of input at byte 1"},
  {"   ", "json: unexpected end of input at byte 4"},
  {"[1,2", "json: unterminated array at byte 5"},
  {"[1 2]", "json: expected ',' or ']' in array at byte 4"},
  {'{"a" 1}', "json: expected ':' after object key at byte 6"},
  {'{"a":1,}', "json: expected a string key in object at byte 8"},
  {"{a:1}", "json: expected a string key in object at byte 2"},
  {'{"a":1', "json: unterminated object at byte 7"},
  {"tru", "json: invalid literal at byte 1"},
  {"nul", "json: invalid literal at byte 1"},
  {"01", "json: unexpected trailing characters at byte 2"},
  {"1.", "json: invalid number: digit expected after '.' at byte 3"},
  {".5", "json: unexpected character at byte 1"},
  {"1e", "json: invalid number: digit expected in exponent at byte 3"},
  {"-", "json: invalid number at byte 2"},
  {"+1", "json: unexpected character at byte 1"},
  {"[1] x", "json: unexpected trailing characters at byte 5"},
  {'"abc', "json: unterminated string at byte 5"},
  {'"a\\x"', "json: invalid escape at byte 4"},
  {'"\\u12"', "json: truncated \\u escape at byte 4"},
  {'"\\u12g4"', "json: invalid hex digit in \\u escape at byte 6"},
  {'"\\udc00"', "json: lone low surrogate in \\u escape at byte 2"},
  {'"\\ud800"', "json: high surrogate not followed by a low surrogate at byte 2"},
  {'"\\ud800\\u0041"', "json: high surrogate not followed by a low surrogate at byte 8"},
  {'"a\tb"', "json: control character in string at byte 3"},
  {'"\xff"', "json: invalid UTF-8 in string at byte 2"},
  {'"\xc0\xaf"', "json: invalid UTF-8 in string at byte 2"},
  {'"\xed\xa0\x80"', "json: invalid UTF-8 in string at byte 2"},
  {"\xef\xbb\xbf{}", "json: unexpected character at byte 1"},
  {"NaN", "json: unexpected character at byte 1"},
  {"[Infinity]", "json: unexpected character at byte 2"},
}

T.test("decode errors name what and the byte", function()
  for _, case in ipairs(decode_errors) do
    local v, err = decode(case[1])
    T.eq(v, nil, "decode(" .. case[1] .. ")")
    T.eq(err, case[2], "decode(" .. case[1] .. ")")
  end
end)

-- encode errors: value -> message (raised)
T.test("encode errors name the path", function()
  local cyc = {name = "x"}
  cyc.self = cyc
  T.raises(function() encode(cyc) end, "json: cycle: table contains itself at $.self")
  T.raises(function() encode({jobs = {{}, {}, {}, {name = 0/0}}}) end,
    "json: cannot encode NaN at $.jobs[3].name")
  T.raises(function() encode({x = math.huge}) end, "json: cannot encode infinity at $.x")
  T.raises(function() encode({a = {[1] = 1, b = 2}}) end, "json: table mixes keys")
  T.raises(function() encode({a = {[1] = 1, b = 2}}) end, "at $.a")
  T.raises(function() encode({[1] = 1, [3] = 3}) end, "json: table mixes keys")
  T.raises(function() encode({[true] = 1}) end, "json: table mixes keys")
  T.raises(function() encode({s = "ok\xffno"}) end, "json: invalid UTF-8 in string (byte 3) at $.s")
  T.raises(function() encode({f = print}) end, "json: cannot encode a function value at $.f")
  T.raises(function() encode(json.array({1, x = 2})) end, "json: array (json.array) has non-integer keys at $")
  T.raises(function() json.array(setmetatable({}, {})) end, "table already has a metatable")
end)

T.test("a shared (non-cyclic) table may appear twice", function()
  local shared = {1}
  T.eq(encode({a = shared, b = shared}), '{"a":[1],"b":[1]}')
end)

T.test("nesting limit guards both directions", function()
  local deep_ok = string.rep("[", 128) .. string.rep("]", 128)
  local deep_bad = string.rep("[", 129) .. string.rep("]", 129)
  T.eq(encode(decode(deep_ok)), deep_ok)
  local v, err = decode(deep_bad)
  T.eq(v, nil)
  T.eq(err, "json: nesting deeper than the limit at byte 129")
  local t = {}
  local cur = t
  for _ = 1, 128 do cur[1] = {}; cur = cur[1] end
  T.raises(function() encode(t) end, "json: nesting deeper than the limit at $[0]")
  T.eq(#encode(t, {max_depth = 200}), 129 * 2 + 0 * 1)
  T.eq(select(2, decode("[[1]]", {max_depth = 1})), "json: nesting deeper than the limit at byte 2")
  T.raises(function() decode("[]", {max_depth = 0}) end, "max_depth must be 1..10000")
  -- a very deep document is refused without exhausting the C stack
  T.eq(select(2, decode(string.rep("[", 100000))), "json: nesting deeper than the limit at byte 129")
end)

-- JSONTestSuite-style: y_ must parse, n_ must not.
local accept = {
  "[]", "{}", '""', "0", "-0.0", "1E2", "1e-2", "[1.5e+10]", ' [ 1 , 2 ] ', '{"":0}',
  '{"a":{"a":{"a":[]}}}', '["\\u0000"]', '"\\uFFFF"', '["日本"]', "[false, true, null]",
  "\t\n\r 7 \t\n\r", '"\\/"', "[[[[[]]]]]", "123456789012345678901234567890",
}
local reject = {
  "[", "]", "{", "[1,]", "[,1]", '{"a"}', '{"a":}', "[01]", "[1.e1]", "[-]", "[--1]", "[0x10]",
  "[1,,2]", '["a"', "'single'", "[True]", "{1:2}", "[1]]", '["\\u"]', "[\"\\a\"]", "/* c */ 1",
  "1 2", '{"a":1 "b":2}', "\0", "[\"\n\"]", "[1e+]", "[.1]", "[1.1.1]",
}

T.test("accepts the y_ cases", function()
  for _, s in ipairs(accept) do
    local v, err = decode(s)
    if v == nil then error("rejected " .. s .. ": " .. tostring(err)) end
  end
  T.eq(math.type(decode("123456789012345678901234567890")), "float")
end)

T.test("rejects the n_ cases", function()
  for _, s in ipairs(reject) do
    local v, err = decode(s)
    T.eq(v, nil, "accepted " .. s)
    T.matches(err, "^json: .* at byte %d+$")
  end
end)

-- RFC 8259 lets a parser pick either value of a duplicated key; the JSONL reader took the first
-- and this one the last, so a request and a stored line could mean different things (issue 19).
T.test("a duplicated key is refused, naming it, at any depth", function()
  T.eq({decode('{"a":1,"a":2}')}, {nil, 'json: duplicate key "a" at byte 8'})
  T.eq({decode('{"m":[{"role":"user","role":"system"}]}')}, {nil, 'json: duplicate key "role" at byte 22'})
  T.eq(decode('{"a":{"a":1},"b":{"a":2}}').b.a, 2)  -- the same key in two objects is fine
end)

T.test("argument checks raise", function()
  T.raises(function() decode() end, "bad argument #1 to 'decode'")
  T.raises(function() encode() end, "bad argument #1 to 'encode'")
end)

-- Small objects keep their values on the Lua stack and sort by insertion; bigger ones are
-- gathered and sorted apart; nested objects share one key stack that grows on the heap.
T.test("objects of every size come out sorted, at any nesting", function()
  local function object(n, value)
    local t, keys = {}, {}
    for i = 1, n do
      local k = ("k%03d"):format((i * 37) % 1000)
      t[k] = value(i)
      keys[#keys + 1] = k
    end
    table.sort(keys)
    return t, keys
  end
  for _, n in ipairs({1, 2, 31, 32, 33, 100}) do
    local t, keys = object(n, function(i) return i end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = ('"%s":%d'):format(k, t[k]) end
    T.eq(encode(t), "{" .. table.concat(parts, ",") .. "}", n .. " keys")
  end
  -- 40 levels of 30-key objects: the key stack outgrows its first block; output > 2 KiB
  local deep = {}
  local cur = deep
  for _ = 1, 40 do
    local t = object(30, function(i) return i % 2 == 0 and "v" or 0.5 end)
    cur.zz = t
    cur = t
  end
  local s = encode(deep)
  T.eq(#s > 2048, true)
  T.eq(encode(decode(s)), s)
  local v = decode(s)
  T.eq(v.zz.zz.k037, 0.5)
  T.eq(v.zz.zz.k074, "v")
  -- an error deep inside names the path through kept and looked-up keys alike
  local big = object(40, function(i) return i end)
  big.k999 = {x = {y = 0/0}}
  T.raises(function() encode({a = big}) end, "json: cannot encode NaN at $.a.k999.x.y")
  T.raises(function() encode({a = {b = 1, [1] = 2}}) end, "json: table mixes keys")
  local many = object(40, function(i) return i end)
  many[1] = true
  T.raises(function() encode(many) end, "json: table mixes keys")
end)

T.test("numbers: integers by hand, floats shortest", function()
  for _, n in ipairs({0, 7, -7, 10, 120, -1000000, math.maxinteger, math.mininteger}) do
    T.eq(encode(n), string.format("%d", n))
  end
  T.eq(encode(1.2345), "1.2345")
  T.eq(encode(-0.0), "-0.0")
  T.eq(encode(1e15), "1e+15")
  T.eq(encode(0.1 + 0.2), "0.30000000000000004")
end)

T.test("a deeper max_depth than the default allocates its levels", function()
  local t = {}
  local cur = t
  for _ = 1, 300 do cur.a = {}; cur = cur.a end
  T.eq(#encode(t, {max_depth = 400}), 300 * 6 + 2)
  T.raises(function() encode(t, {max_depth = 200}) end, "json: nesting deeper than the limit")
end)

-- The printf path is the definition; the plain-decimal fast path must print the same text.
T.test("floats: the fast path prints what %.15g..%.17g would", function()
  local function reference(x)
    local s
    for prec = 15, 17 do
      s = string.format("%." .. prec .. "g", x)
      if prec == 17 or tonumber(s) == x then break end
    end
    if not s:find("[.eEn]") then s = s .. ".0" end
    return s
  end
  local cases = {1.2345, -1.2345, 0.5, 0.05, 0.0001, -0.0001, 9.99e-5, 1e-5, 3.0, 100.0, -7.0,
    100.5, 123456789012345.0, 999999999999999.0, 1e15, 1e16, 0.1 + 0.2, 1/3, 2^53 + 1.0,
    12345.678901234, 0.123456789012345, 1.5e-4, 5e-324, 1.7976931348623157e308}
  local seed = 12345
  for _ = 1, 3000 do  -- short decimals, long ones, and every magnitude
    seed = (seed * 1103515245 + 12345) % 2^31
    local digits = seed % 16
    local scale = 10.0 ^ (seed % 23 - 8)
    cases[#cases + 1] = math.floor(seed / 16 % 10 ^ digits) / 10 ^ (seed % 7) * (seed % 2 == 0 and 1 or -1)
    cases[#cases + 1] = seed / 2^31 * scale
  end
  for _, x in ipairs(cases) do
    if math.type(x) == "float" and x == x and x ~= 0 then
      T.eq(encode(x), reference(x), "encode(" .. string.format("%.17g", x) .. ")")
    end
  end
end)

T.run()
