-- TCP echo in braid: one loop serves and drives loopback connections;
-- 64-byte messages, one at a time per connection (write, drain,
-- readexactly), for about a second: reports round trips/s over 1 and over
-- 50 connections. Then 64 MiB through one connection (echoed back):
-- reports MiB/s. usage: braid echo.lua
local braid = require "braid"
local asyncio = require "braid.asyncio"

local function echo(reader, writer)
  while true do
    local data = reader:read(65536)
    if data == "" then break end
    writer:write(data)
    writer:drain()
  end
  writer:close()
end

-- nconn clients, each a task doing round trips until a second has passed
local function pingpong(port, nconn)
  local msg = string.rep("x", 64)
  local conns = {}
  for i = 1, nconn do
    local r, w = asyncio.open_connection("127.0.0.1", port)
    conns[i] = {r, w}
  end
  local total, t0 = 0, braid.monotonic()
  local stop = t0 + 1
  local tasks = {}
  for i = 1, nconn do
    tasks[i] = asyncio.create_task(function()
      local reader, writer = conns[i][1], conns[i][2]
      local n = 0
      repeat
        for _ = 1, 100 do
          writer:write(msg)
          writer:drain()
          assert(#reader:readexactly(64) == 64)
        end
        n = n + 100
      until braid.monotonic() >= stop
      total = total + n
    end)
  end
  asyncio.gather(table.unpack(tasks))
  local dt = braid.monotonic() - t0
  for i = 1, nconn do conns[i][2]:close() end
  return total / dt
end

asyncio.run(function()
  local server = asyncio.start_server(echo, "127.0.0.1", 0)
  local _, port = server.sockets[1]:getsockname()
  print(string.format("RESULT echo_64b_1conn %.0f", pingpong(port, 1)))
  print(string.format("RESULT echo_64b_50conn %.0f", pingpong(port, 50)))

  local reader, writer = asyncio.open_connection("127.0.0.1", port)
  local chunk = string.rep("y", 65536)
  local total = 64 * 1024 * 1024
  local t0 = braid.monotonic()
  local sender = asyncio.create_task(function()
    for _ = 1, total // #chunk do
      writer:write(chunk)
      writer:drain()
    end
  end)
  local got = 0
  while got < total do got = got + #reader:read(262144) end
  asyncio.await(sender)
  local dt = braid.monotonic() - t0
  print(string.format("RESULT echo_64mib_MiBps %.1f", total / dt / 1048576))
  writer:close()
  server:close()
  server:wait_closed()
end)
