-- scripts/data-upload.lua: the child half of a skill's dataset upload (fastbrain.data_upload):
-- checks the body on stdin and writes the new data as a temp file, or reports a file's stats,
-- off the server's loop. Usage: fastbrain run scripts/data-upload.lua --template T --out PATH
-- [--append OLD] [--format jsonl|json] [--key K] < BODY | --template T --stats PATH
require("fastbrain.data_upload").main(arg)
