-- A subprocess pipeline driven by tasks: a generator's output is copied
-- chunk by chunk into `sort`, whose output is read while the loop keeps
-- running other tasks.
local asyncio = require "braid.asyncio"
local PIPE = asyncio.PIPE

asyncio.run(function()
  local gen = asyncio.create_subprocess_shell("printf 'pear\\napple\\nfig\\nkiwi\\n'", {stdout = PIPE})
  local sort = asyncio.create_subprocess_exec("sort", {stdin = PIPE, stdout = PIPE})

  local copier = asyncio.create_task(function()
    while true do
      local chunk = gen.stdout:read(4096)
      if chunk == "" then break end
      sort.stdin:write(chunk)
      sort.stdin:drain()
    end
    sort.stdin:close() -- sort sees EOF and writes its output
  end)

  local ticks = 0
  local ticker = asyncio.create_task(function()
    while true do
      ticks = ticks + 1
      asyncio.sleep(0.001)
    end
  end)

  local lines = {}
  while true do
    local line = sort.stdout:readline()
    if line == "" then break end
    lines[#lines + 1] = line:sub(1, -2)
  end
  asyncio.await(copier)
  print("sorted: " .. table.concat(lines, " "))
  print("generator exit: " .. gen:wait() .. ", sort exit: " .. sort:wait())
  ticker:cancel()
  print("other tasks ran meanwhile: " .. tostring(ticks > 0))
end)
