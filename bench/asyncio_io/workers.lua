-- One server on every core: a handler doing about 100 µs of Lua work per
-- request, 50 connections driven by a light load generator in its own
-- process (anchors/loadgen.c, compiled with cc on the fly: an epoll loop in
-- C; this script with `client` where there is no cc); reports requests/s
-- for one loop and for {workers = 2}, and their ratio. usage: braid workers.lua
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
local function measure(opts)
  return asyncio.run(function()
    local server = asyncio.start_server(work, "127.0.0.1", 0, opts)
    local _, port = server.sockets[1]:getsockname()
    local p = loadgen and asyncio.create_subprocess_exec(loadgen, port, 1.5, 50, {stdout = asyncio.PIPE})
      or asyncio.create_subprocess_exec(exe, arg[0], "client", port, 1.5, {stdout = asyncio.PIPE})
    local out = p:communicate()
    server:close()
    server:wait_closed()
    return tonumber(out)
  end)
end

local one = measure(nil)
local two = measure({workers = 2})
if loadgen then os.remove(loadgen) end
print(string.format("RESULT workers_1loop %.0f", one))
print(string.format("RESULT workers_2 %.0f", two))
print(string.format("RESULT workers_2_speedup %.2f", two / one))
