-- The `done()` hook shared by the load scripts: one machine-readable line for benches/load.sh
-- and benches/scale.sh to parse, instead of wrk's human summary.
--
--   WRK requests=N duration_us=N p50_us=N p99_us=N non2xx=N connect=N read=N write=N
--       timeout=N started=N
--
-- `requests` are completed responses; `non2xx` is wrk's count of statuses > 399; `started` is
-- how many requests the scripts' `request()` handed out (0 for a fixed request), read from each
-- thread's global of that name.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local started = 0
  for _, thread in ipairs(threads) do
    started = started + (tonumber(thread:get("started")) or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d started=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout, started))
end
