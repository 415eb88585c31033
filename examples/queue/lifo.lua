-- LifoQueue: the last item put is the first one out (a stack), here used
-- for depth-first traversal of a small tree.
local queue = require "braid.queue"

local tree = {name = "root", children = {
  {name = "a", children = {{name = "a1"}, {name = "a2"}}},
  {name = "b", children = {{name = "b1"}}},
}}

local stack = queue.LifoQueue()
stack:put(tree)
local order = {}
while not stack:empty() do
  local node = stack:get()
  order[#order + 1] = node.name
  local kids = node.children or {}
  for i = #kids, 1, -1 do stack:put(kids[i]) end -- first child on top
end
print("depth-first: " .. table.concat(order, " "))

for _, v in ipairs{1, 2, 3} do stack:put(v) end
print("popped:", stack:get(), stack:get(), stack:get())
