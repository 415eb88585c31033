-- TCP echo in braid: one loop serves and drives one loopback connection;
-- 64-byte messages, one at a time (write, drain, readexactly), for about a
-- second: reports round trips/s. Then 64 MiB through one connection (echoed
-- back): reports MiB/s. usage: braid echo.lua
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

asyncio.run(function()
  local server = asyncio.start_server(echo, "127.0.0.1", 0)
  local _, port = server.sockets[1]:getsockname()
  local reader, writer = asyncio.open_connection("127.0.0.1", port)
  local msg = string.rep("x", 64)
  local n, t0 = 0, braid.monotonic()
  local dt
  repeat
    for _ = 1, 1000 do
      writer:write(msg)
      writer:drain()
      assert(#reader:readexactly(64) == 64)
    end
    n = n + 1000
    dt = braid.monotonic() - t0
  until dt >= 1
  print(string.format("RESULT echo_64b_1conn %.0f", n / dt))

  local chunk = string.rep("y", 65536)
  local total = 64 * 1024 * 1024
  t0 = braid.monotonic()
  local sender = asyncio.create_task(function()
    for _ = 1, total // #chunk do
      writer:write(chunk)
      writer:drain()
    end
  end)
  local got = 0
  while got < total do got = got + #reader:read(262144) end
  asyncio.await(sender)
  dt = braid.monotonic() - t0
  print(string.format("RESULT echo_64mib_MiBps %.1f", total / dt / 1048576))
  writer:close()
  server:close()
  server:wait_closed()
end)
