-- A hot set of stored pages for benches/frugal.sh: request n is
--   /count/tag.svg?url=example.com/posts/<(n * stride) mod pages, 15 digits>
-- cycling through `hot` pages spread over the `pages` the store holds (pages made by frugal.sh).
-- Arguments after `--`: pages, hot. Run with one wrk thread (-t1); `started` counts the requests
-- handed out, as report.lua reads it.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local pages, hot, stride = 1000000, 100000, 1
started = 0
local checked = false

function init(args)
  pages = tonumber(args[1]) or pages
  hot = tonumber(args[2]) or hot
  stride = math.max(1, math.floor(pages / hot))
end

function request()
  if not checked then
    checked = true
    return wrk.format(nil, "/count/tag.svg?url=example.com/posts/000000000000000")
  end
  local n = started % hot
  started = started + 1
  return wrk.format(nil, string.format("/count/tag.svg?url=example.com/posts/%015d", n * stride))
end
