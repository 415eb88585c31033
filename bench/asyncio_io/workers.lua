-- One server on every core: a handler doing about 100 µs of Lua work per
-- request, 50 connections driven by a light load generator in its own
-- process (anchors/loadgen.c, compiled with cc on the fly: an epoll loop in
-- C; this script with `client` where there is no cc); reports requests/s
-- for one loop and for {workers = 2}, and their ratio, and (from
-- /proc/self/stat and the generator's own count) the CPU each side used a
-- request. usage: braid workers.lua
local braid = require "braid"
local asyncio = require "braid.asyncio"

local function work(reader, writer)
  while true do
    local req = reader:read(64)
    if req == "" then break end
    local x = 0
    for i = 1, 8000 do x = x + i % 7 end -- ~100 µs of Lua
    writer:write(string.rep("r", 63) .. (x % 10))
  end
  writer:close()
end

if arg[1] == "client" then -- the load generator: 50 connections for `secs`
  local port, secs = tonumber(arg[2]), tonumber(arg[3])
  asyncio.run(function()
    local n, stop = 0, braid.monotonic() + secs
    local fs = {}
    for i = 1, 50 do
      fs[i] = function()
        local r, w = asyncio.open_connection("127.0.0.1", port)
        local msg = string.rep("q", 64)
        while braid.monotonic() < stop do
          w:write(msg)
          r:readexactly(64)
          n = n + 1
        end
        w:close()
      end
    end
    asyncio.gather(table.unpack(fs))
    print(n / secs)
  end)
  return
end

local exe = arg[-1] or "braid"
local here = arg[0]:match("^(.*)/") or "."
local loadgen = os.tmpname()
if not os.execute(("cc -O2 -o %q %q/anchors/loadgen.c 2>/dev/null"):format(loadgen, here)) then
  os.remove(loadgen)
  loadgen = nil
end
-- This process's CPU time (user + system, all threads) in seconds, or nil.
local function cpu_seconds()
  local f = io.open("/proc/self/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local rest = s:match("%) (.*)") -- after the command name
  local fields = {}
  for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- utime, stime (fields 14, 15; 100 Hz ticks)
end

-- requests/s, and CPU µs a request of the servers and of the load generator
local function measure(opts)
  return asyncio.run(function()
    local server = asyncio.start_server(work, "127.0.0.1", 0, opts)
    local _, port = server.sockets[1]:getsockname()
    local p = loadgen and asyncio.create_subprocess_exec(loadgen, port, 1.5, 50, {stdout = asyncio.PIPE})
      or asyncio.create_subprocess_exec(exe, arg[0], "client", port, 1.5, {stdout = asyncio.PIPE})
    local c0 = cpu_seconds()
    local out = p:communicate()
    local c1 = cpu_seconds()
    server:close()
    server:wait_closed()
    local rate = tonumber(out:match("^(%S+)"))
    local gen = tonumber(out:match("cpu (%S+)"))
    local n = rate * 1.5
    return rate, c0 and (c1 - c0) * 1e6 / n, gen and gen * 1e6 / n
  end)
end

local one, s1, g1 = measure(nil)
local two, s2, g2 = measure({workers = 2})
if loadgen then os.remove(loadgen) end
-- Where the CPU went (not RESULT rows). With {workers = 2} on two cores
-- the load generator takes its CPU from the servers': the most the two
-- cores can serve at the measured costs is 2 s / (servers' + generator's
-- CPU a request), against 1 s / (the servers' CPU a request) for one loop
-- on a core of its own. (On a loaded machine one loop gets less than a
-- core, and the measured speed-up can pass this ceiling.)
if s1 and g1 then
  print(string.format("1 loop: servers %.0f µs CPU a request, load generator %.0f µs", s1, g1))
  print(string.format("2 workers: servers %.0f µs CPU a request, load generator %.0f µs", s2, g2))
  print(string.format("speed-up ceiling on 2 cores at these costs: %.2f", 2 * s1 / (s2 + g2)))
end
print(string.format("RESULT workers_1loop %.0f", one))
print(string.format("RESULT workers_2 %.0f", two))
print(string.format("RESULT workers_2_speedup %.2f", two / one))
