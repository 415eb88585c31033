-- TCP echo against raw luv callbacks (anchor for echo.lua; run with lua5.4:
-- lua5.4 anchors/echo_luv.lua [NCONN]): 64-byte messages over NCONN (1)
-- loopback connections, one at a time per connection, for about a second:
-- reports round trips/s.
local uv = require "luv"
local nconn = tonumber(arg[1]) or 1
local server = uv.new_tcp()
server:bind("127.0.0.1", 0)
server:listen(256, function()
  local c = uv.new_tcp()
  server:accept(c)
  c:nodelay(true)
  c:read_start(function(err, data)
    if data then c:write(data) else c:close() end
  end)
end)
local port = server:getsockname().port
local msg = string.rep("x", 64)
local n, live, t0 = 0, nconn, nil
local function done(client)
  client:close()
  live = live - 1
  if live == 0 then
    local dt = (uv.hrtime() - t0) / 1e9
    print(string.format("RESULT echo_64b_%dconn %.0f", nconn, n / dt))
    server:close()
    uv.stop()
  end
end
local connected, clients = 0, {}
for _ = 1, nconn do
  local client = uv.new_tcp()
  client:connect("127.0.0.1", port, function()
    local got = 0
    client:read_start(function(err, data)
      if not data then return end
      got = got + #data
      while got >= 64 do
        got = got - 64
        n = n + 1
        if n % 100 == 0 and (uv.hrtime() - t0) / 1e9 >= 1 then return done(client) end
        client:write(msg)
      end
    end)
    connected = connected + 1
    if connected == nconn then
      t0 = uv.hrtime()
      -- every client starts once all are connected
      for _, c in ipairs(clients) do c:write(msg) end
    end
  end)
  client:nodelay(true)
  clients[#clients + 1] = client
end
uv.run()
