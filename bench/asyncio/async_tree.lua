-- async_tree in braid: a Lua port of pyperformance's async_tree: each node
-- gathers 6 child tasks, 6 levels deep (46,656 leaves, 55,986 tasks), each
-- leaf does sleep(0); repeated for about a second; reports trees/s.
-- usage: braid async_tree.lua [depth]
local braid = require "braid"
local asyncio = require "braid.asyncio"
local depth = tonumber(arg and arg[1]) or 6
local BRANCHES = 6
local create_task, gather, sleep = asyncio.create_task, asyncio.gather, asyncio.sleep

local leaves = 0
local function recurse_with_gather(level)
  if level == 0 then
    sleep(0) -- the leaf's "I/O"
    leaves = leaves + 1
    return
  end
  local t = {}
  for i = 1, BRANCHES do t[i] = create_task(recurse_with_gather, level - 1) end
  gather(table.unpack(t))
end

asyncio.run(function()
  recurse_with_gather(depth) -- warm-up and check
  assert(leaves == BRANCHES ^ depth, leaves)
  local trees, t0 = 0, braid.monotonic()
  local dt
  repeat
    recurse_with_gather(depth)
    trees = trees + 1
    dt = braid.monotonic() - t0
  until dt >= 1 and trees >= 2
  print(string.format("RESULT async_tree %.2f", trees / dt))
end)
