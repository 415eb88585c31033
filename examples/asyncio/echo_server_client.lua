-- An echo server and three clients in one script: each client connection
-- is served by its own task, and the clients run concurrently.
local asyncio = require "braid.asyncio"

local function handle(reader, writer)
  local peer = writer:get_extra_info("peername")
  while true do
    local line = reader:readline()
    if line == "" then break end -- the client closed its side
    writer:write("echo: " .. line)
    writer:drain()
  end
  writer:close()
  assert(peer == "127.0.0.1")
end

local function client(port, name, n)
  local reader, writer = asyncio.open_connection("127.0.0.1", port)
  local replies = {}
  for i = 1, n do
    writer:write(("%s says %d\n"):format(name, i))
    replies[#replies + 1] = reader:readline():gsub("\n$", "")
  end
  writer:write_eof() -- half-close: the server sees EOF and closes
  assert(reader:read() == "")
  writer:close()
  writer:wait_closed()
  return replies
end

asyncio.run(function()
  local server = asyncio.start_server(handle, "127.0.0.1", 0)
  local host, port = server.sockets[1]:getsockname()
  print(("serving on %s (port chosen by the system)"):format(host))
  local results = asyncio.gather(
    function() return client(port, "ann", 2) end,
    function() return client(port, "bob", 2) end,
    function() return client(port, "cy", 1) end)
  for _, replies in ipairs(results) do
    for _, r in ipairs(replies) do print(r) end
  end
  server:close()
  server:wait_closed()
  print("server closed")
end)
