-- Distinct keys for benches/load.sh: request n (per wrk thread) is
--   <path>?url=bench.example/p<n mod keys>
-- so consecutive requests always name different pages and a run cycles through `keys` of them.
-- Arguments after `--`: the path (default /count/tag.svg) and the number of keys (100000).
-- Run it with one wrk thread (-t1), as load.sh does: the counter is per thread. The global
-- `started` counts the requests handed out; report.lua prints it.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local head, tail
local keys = 100000
started = 0
-- After init(), wrk calls request() once on its first thread to check what it returns, and
-- never sends that request: it must not count as handed out (else page 0 would be skipped).
local checked = false

function init(args)
  local path = args[1] or "/count/tag.svg"
  keys = tonumber(args[2]) or keys
  -- One request built by wrk, split around its path: each request is then one concatenation.
  local marker = path .. "?url=bench.example/p"
  local template = wrk.format(nil, marker .. "@")
  local at = template:find(marker .. "@", 1, true)
  head = template:sub(1, at + #marker - 1)
  tail = template:sub(at + #marker + 1)
end

function request()
  if not checked then
    checked = true
    return head .. 0 .. tail
  end
  local n = started % keys
  started = started + 1
  return head .. n .. tail
end
