-- File I/O without blocking the loop: asyncio.to_thread runs a blocking
-- function in the default thread pool and suspends only the calling task.
-- Port of the "performing file io in a new coroutine" (aiofiles) example.
local asyncio = require "braid.asyncio"

-- runs in a pool thread: it may block
local function create_file(filename)
  local f = assert(io.open(filename, "w"))
  f:write("hello from a worker thread\n")
  f:close()
  return filename
end

local function task(filename)
  asyncio.to_thread(create_file, filename)
  print("We just created the file from a coroutine")
end

local function main()
  print("Waiting for the new coroutine to finish...")
  local filename = os.tmpname()
  task(filename)
  local f = assert(io.open(filename))
  print("it holds: " .. f:read("l"))
  f:close()
  os.remove(filename)
end

asyncio.run(main)
