-- TCP echo against raw luv callbacks (anchor for echo.lua; run by hand with
-- lua5.4: lua5.4 anchors/echo_luv.lua): 64-byte messages over one loopback
-- connection, one at a time, for about a second: reports round trips/s.
local uv = require "luv"
local server = uv.new_tcp()
server:bind("127.0.0.1", 0)
server:listen(128, function()
  local c = uv.new_tcp()
  server:accept(c)
  c:read_start(function(err, data)
    if data then c:write(data) else c:close() end
  end)
end)
local port = server:getsockname().port
local client = uv.new_tcp()
local msg = string.rep("x", 64)
local n, got, t0 = 0, 0, uv.hrtime()
client:connect("127.0.0.1", port, function()
  client:read_start(function(err, data)
    if not data then return end
    got = got + #data
    while got >= 64 do
      got = got - 64
      n = n + 1
      if n % 1000 == 0 and (uv.hrtime() - t0) / 1e9 >= 1 then
        print(string.format("RESULT echo_64b_1conn %.0f", n / ((uv.hrtime() - t0) / 1e9)))
        client:close()
        server:close()
        uv.stop()
        return
      end
      client:write(msg)
    end
  end)
  client:write(msg)
end)
uv.run()
