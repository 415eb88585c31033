-- A pipeline of stages, each a thread joined to the next by a Queue:
-- parse -> square -> format. shutdown() tells each stage its input is over.
local threading = require "braid.threading"
local queue = require "braid.queue"

local function stage(input, output, fn)
  return threading.Thread{target = function(input, output, fn)
    while true do
      local ok, item = pcall(input.get, input)
      if not ok then break end -- ShutDown: upstream is finished
      output:put(fn(item))
    end
    output:shutdown() -- pass the end downstream
  end, args = {input, output, fn}}
end

local raw, numbers, squares, lines = queue.Queue(4), queue.Queue(4), queue.Queue(4), queue.Queue()
local stages = {
  stage(raw, numbers, function(s) return tonumber(s) end),
  stage(numbers, squares, function(n) return n * n end),
  stage(squares, lines, function(n) return "square: " .. n end),
}
for _, t in ipairs(stages) do t:start() end
for i = 1, 5 do raw:put(tostring(i)) end
raw:shutdown()
for _, t in ipairs(stages) do t:join() end
while true do
  local ok, line = pcall(lines.get, lines)
  if not ok then break end
  print(line)
end
print("pipeline finished")
