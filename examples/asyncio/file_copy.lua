-- Async file copy: asyncio.open reads and writes on libuv's thread pool,
-- so a ticker task keeps running while three files are copied at once.
local asyncio = require "braid.asyncio"

local function copy(src, dst)
  local from <close> = asyncio.open(src, "rb")
  local to <close> = asyncio.open(dst, "wb")
  local n = 0
  for chunk in from:lines(64 * 1024) do -- 64 KiB at a time
    to:write(chunk)
    n = n + #chunk
  end
  return n
end

local function main()
  local ticks = 0
  local ticker = asyncio.create_task(function()
    while true do
      asyncio.sleep(0)
      ticks = ticks + 1
    end
  end)
  local names = {}
  for i = 1, 3 do
    names[i] = os.tmpname()
    local f <close> = asyncio.open(names[i], "w")
    for line = 1, 20000 do f:write("file ", i, " line ", line, "\n") end
  end
  local copies = {}
  for i = 1, 3 do
    copies[i] = asyncio.create_task(copy, names[i], names[i] .. ".copy")
  end
  local sizes = asyncio.gather(table.unpack(copies))
  ticker:cancel()
  for i = 1, 3 do
    local a <close> = asyncio.open(names[i])
    local b <close> = asyncio.open(names[i] .. ".copy")
    print(("copy %d: %d bytes, identical: %s"):format(i, sizes[i], a:read("a") == b:read("a")))
    os.remove(names[i])
    os.remove(names[i] .. ".copy")
  end
  print("the ticker ran meanwhile: " .. tostring(ticks > 0))
end

asyncio.run(main)
