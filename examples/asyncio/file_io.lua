-- File I/O without blocking the loop: asyncio.open runs the file's open,
-- reads and writes on libuv's thread pool and suspends only the calling
-- task. Port of the "performing file io in a new coroutine" (aiofiles)
-- example: mode "x" creates the file, failing if it exists.
local asyncio = require "braid.asyncio"

-- a simple task that performs file io and prints a message
local function task(filename)
  local f <close> = asyncio.open(filename, "x") -- create the file
  f:write("hello from a coroutine\n")
  print("We just created the file from a coroutine")
end

local function main()
  print("Waiting for the new coroutine to finish...")
  local filename = os.tmpname()
  os.remove(filename) -- "x" wants a name that does not exist yet
  task(filename)
  local f <close> = asyncio.open(filename)
  print("it holds: " .. f:read("l"))
  local ok, err = pcall(asyncio.open, filename, "x")
  print(("opening it again with 'x': %s (%s)"):format(ok, err.errno))
  os.remove(filename)
end

asyncio.run(main)
