-- fastbrain.args: options with values (separate and inline), numbers, flags, bare words, help,
-- and each refusal's message; then the scripts that parse with it, run as a user runs them.
local T = require "tests.lua.testing"
local fb = require "fastbrain"
local args = require "fastbrain.args"

local SPEC = {options = {out = "string", max_len = "number", base = "flag"}, defaults = {max_len = 64}}

T.test("values, inline values, numbers and flags; defaults stay where nothing is given", function()
  local opts, given = args.parse({"--out", "dir", "--max-len=128", "--base"}, SPEC)
  T.eq(opts, {out = "dir", max_len = 128, base = true})
  T.eq(given, {out = true, max_len = true, base = true})
  opts, given = args.parse({}, SPEC)
  T.eq({opts, given}, {{max_len = 64}, {}})
  T.eq(SPEC.defaults, {max_len = 64}, "the defaults are copied, not filled in")
  T.eq(args.parse({"--out="}, SPEC).out, "", "an empty inline value is a value")
end)

T.test("each refusal names the argument", function()
  local function refused(argv, spec) return select(2, args.parse(argv, spec or SPEC)) end
  T.eq(refused({"--nope", "x"}), "unknown argument '--nope'")
  T.eq(refused({"--max_len", "3"}), "unknown argument '--max_len'", "only the dashed spelling")
  T.eq(refused({"--out"}), "--out needs a value")
  T.eq(refused({"--max-len", "many"}), "--max-len needs a number")
  T.eq(refused({"--base=yes"}), "--base takes no value")
  T.eq(refused({"stray"}), "unknown argument 'stray'")
  T.eq(refused({"--out", "d", "--oops"}, {options = SPEC.options, usage = "usage: x [--out DIR]"}),
       "unknown argument '--oops'\nusage: x [--out DIR]")
end)

T.test("-h and --help return the usage and say so", function()
  local spec = {options = {}, usage = "usage: x"}
  T.eq({args.parse({"-h"}, spec)}, {nil, "usage: x", true})
  T.eq({args.parse({"--help", "--nope"}, spec)}, {nil, "usage: x", true})
end)

T.test("bare words: one into spec.word, every one into spec.words", function()
  local one = {options = {lr = "number"}, word = "skill"}
  local opts, given = args.parse({"greeter", "--lr", "0.5"}, one)
  T.eq({opts, given}, {{skill = "greeter", lr = 0.5}, {skill = true, lr = true}})
  T.eq(select(2, args.parse({"a", "b"}, one)), "one skill expected, got 'b' too")
  local many = {options = {}, words = "skills"}
  T.eq(args.parse({"a", "b", "c"}, many).skills, {"a", "b", "c"})
  T.eq(args.parse({}, many).skills, {})
end)

T.test("a malformed spec is the caller's mistake", function()
  T.raises(function() args.parse({}, {}) end, "spec.options (a table) expected")
  T.raises(function() args.parse({}, {options = {n = "int"}}) end, "option n: kind int is not string, number or flag")
end)

-- The scripts through the real binary: their argument errors exit 2 with the message and usage.
local bin = arg[1]
T.test("the scripts refuse bad arguments through it, and answer --help", function()
  if not bin then
    io.stdout:write("     skipped: no fastbrain binary given\n")
    return
  end
  local function run(script, argv)
    local tmp = os.tmpname()
    local cmd = ("%s run %s/scripts/%s %s 2>%s"):format(bin, fb.root, script, argv, tmp)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    local _, _, code = p:close()
    local err = assert(fb.fs.read(tmp))
    os.remove(tmp)
    return code, out, err
  end
  local code, _, err = run("train.lua", "greeter --epochs two")
  T.eq(code, 2)
  T.matches(err, "^train.lua: %-%-epochs needs a number\nusage: fastbrain run scripts/train.lua SKILL")
  code, _, err = run("voice-check.lua", "--base=1")
  T.eq(code, 2)
  T.matches(err, "^voice%-check: %-%-base takes no value\nusage: fastbrain run scripts/voice%-check.lua")
  code, _, err = run("make-base-model.lua", "--steps 3")
  T.eq(code, 2)
  T.matches(err, "^make%-base%-model: %-%-out DIR is required\nusage:")
  code, _, err = run("gen-data.lua", "--skill")
  T.eq(code, 2)
  T.matches(err, "%-%-skill needs a value\nusage: fastbrain run scripts/gen%-data.lua")
  local out
  code, out = run("train.lua", "--help")
  T.eq(code, 0)
  T.matches(out, "^usage: fastbrain run scripts/train.lua SKILL")
end)

T.run()
