-- fastbrain.args: the command line of the scripts in scripts/: options `--name VALUE` or
-- `--name=VALUE` (a flag takes none), bare words, and -h/--help. It checks each value's kind; what
-- a value means (a range, a path that exists) is the script's to check.
--   parse(argv, spec) -> opts, given | nil, message, help
-- spec.options: {key = kind}, the option --max-len being the key max_len; kind is "string",
-- "number" or "flag" (true when present). spec.defaults: the options' starting values (copied).
-- spec.word: the key of the one bare word allowed; spec.words: the key of a list that takes every
-- bare word; with neither, a bare word is refused. spec.usage: the script's usage text.
-- On success `given` holds the keys the command line set. On failure the message names the
-- argument, with the usage on the lines after it; when -h or --help asked, the message is the
-- usage alone and help is true.
--   report(message, help, name) -> exit status: what a script does with a failed parse: the usage
-- on stdout and 0 when help was asked, else "name: message" on stderr and 2.
local M = {}

local KINDS = {string = true, number = true, flag = true}

local function check_spec(spec)
  if type(spec) ~= "table" or type(spec.options) ~= "table" then
    error("fastbrain.args: parse: spec.options (a table) expected", 3)
  end
  for key, kind in pairs(spec.options) do
    if not KINDS[kind] then
      error(("fastbrain.args: parse: option %s: kind %s is not string, number or flag"):format(
        key, tostring(kind)), 3)
    end
  end
end

-- One option's value -> value, the index after it | nil, err; argv[i] is the option.
local function option_value(argv, i, name, kind, inline)
  if kind == "flag" then
    if inline then return nil, ("--%s takes no value"):format(name) end
    return true, i + 1
  end
  local value, after = inline, i + 1
  if not value then
    value, after = argv[i + 1], i + 2
    if value == nil then return nil, ("--%s needs a value"):format(name) end
  end
  if kind == "number" then
    value = tonumber(value)
    if not value then return nil, ("--%s needs a number"):format(name) end
  end
  return value, after
end

local function parse(argv, spec)
  local opts, given = {}, {}
  for k, v in pairs(spec.defaults or {}) do opts[k] = v end
  if spec.words then opts[spec.words] = opts[spec.words] or {} end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "-h" or a == "--help" then return nil, spec.usage or "", true end
    local name, inline = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if name then
      local key = name:gsub("-", "_")
      if not spec.options[key] then return nil, ("unknown argument '%s'"):format(a) end
      local value, after = option_value(argv, i, name, spec.options[key], inline)
      if value == nil then return nil, after end
      opts[key], given[key], i = value, true, after
    else
      if spec.words then
        table.insert(opts[spec.words], a)
      elseif spec.word and not given[spec.word] then
        opts[spec.word], given[spec.word] = a, true
      elseif spec.word then
        return nil, ("one %s expected, got '%s' too"):format(spec.word, a)
      else
        return nil, ("unknown argument '%s'"):format(a)
      end
      i = i + 1
    end
  end
  return opts, given
end

function M.parse(argv, spec)
  check_spec(spec)
  local opts, given, help = parse(argv, spec)
  if not opts and not help and spec.usage then return nil, given .. "\n" .. spec.usage end
  return opts, given, help
end

function M.report(message, help, name)
  if help then
    io.stdout:write(message)
    return 0
  end
  io.stderr:write(name, ": ", message)
  return 2
end

return M
