-- Subprocess start + communicate of `true` (stdout piped), one after the
-- other for about a second: reports processes/s. usage: braid subprocess_true.lua
local braid = require "braid"
local asyncio = require "braid.asyncio"

asyncio.run(function()
  local n, t0 = 0, braid.monotonic()
  local dt
  repeat
    for _ = 1, 20 do
      local p = asyncio.create_subprocess_exec("true", {stdout = asyncio.PIPE})
      p:communicate()
      assert(p.returncode == 0)
    end
    n = n + 20
    dt = braid.monotonic() - t0
  until dt >= 1
  print(string.format("RESULT subprocess_true %.0f", n / dt))
end)
