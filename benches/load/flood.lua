-- The flood of benches/scale.sh: request n is /count/tag.svg?url=bench.example/f<n> for n below
-- `keys`, so each of `keys` pages is counted exactly once; then `tail` requests of /nocount (which
-- count nothing), so that every counting request has had its answer before the thread stops
-- itself. wrk then idles until its duration is over or it gets SIGINT, which scale.sh sends once
-- the flood is done. Arguments after `--`: keys (1000000) and tail (1000). Run it with one wrk
-- thread (-t1): the counter is per thread. The global `started` counts the requests handed out;
-- report.lua prints it.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local keys, tail = 1000000, 1000
local head, rest, idle
started = 0
-- After init(), wrk calls request() once on its first thread to check what it returns, and
-- never sends that request: it must not count as handed out (else page 0 would be skipped).
local checked = false

function init(args)
  keys = tonumber(args[1]) or keys
  tail = tonumber(args[2]) or tail
  -- One request built by wrk, split around its path: each request is then one concatenation.
  local marker = "/count/tag.svg?url=bench.example/f"
  local template = wrk.format(nil, marker .. "@")
  local at = template:find(marker .. "@", 1, true)
  head = template:sub(1, at + #marker - 1)
  rest = template:sub(at + #marker + 1)
  idle = wrk.format(nil, "/nocount?url=bench.example/f0")
end

function request()
  if not checked then
    checked = true
    return idle
  end
  local n = started
  started = n + 1
  if n < keys then
    return head .. n .. rest
  end
  if n >= keys + tail then
    wrk.thread:stop()
  end
  return idle
end
