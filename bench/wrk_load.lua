-- wrk script for `bench.events --client wrk`: `wrk -s bench/wrk_load.lua URL -- METHOD PATH EXPECT THREADS [BODIES KEY]`.
-- Thread t of THREADS sends lines t, t+THREADS, ... of the BODIES file (one JSON body a line), so
-- no body goes twice; `done` prints one JSON line: requests, seconds, p50/p99, and how many
-- answers were not EXPECT or found the bodies used up (both must be 0 for a valid figure).
local threads, started = {}, 0

function setup(thread)
  thread:set("tid", started)
  started = started + 1
  table.insert(threads, thread)
end

function init(args)
  method, path, expect, step = args[1], args[2], tonumber(args[3]), tonumber(args[4])
  headers = {}
  bodies = nil
  if args[5] then
    bodies = {}
    for line in io.lines(args[5]) do bodies[#bodies + 1] = line end
    headers["Authorization"] = "Bearer " .. args[6]
    headers["Content-Type"] = "application/json"
  end
  nxt = tid + 1
  unexpected, exhausted = 0, 0
end

function request()
  local body = nil
  if bodies then
    body = bodies[nxt]
    if body == nil then exhausted = exhausted + 1; body = bodies[1] end
    nxt = nxt + step
  end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, body)
  if status ~= expect then unexpected = unexpected + 1 end
end

function done(summary, latency, requests)
  local unexpected_all, exhausted_all = 0, 0
  for _, t in ipairs(threads) do
    unexpected_all = unexpected_all + t:get("unexpected")
    exhausted_all = exhausted_all + t:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_ms": %.1f, "p99_ms": %.1f, "unexpected": %d, "exhausted": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    unexpected_all, exhausted_all, e.connect + e.read + e.write + e.timeout))
end
