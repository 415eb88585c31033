-- A thread ends itself by raising an error, reported by a custom excepthook.
-- Port of "a thread closing itself via an exception".
local braid = require "braid"
local threading = require "braid.threading"

local function handler(args)
  print(("Got: %s"):format(tostring(args.exc_value)))
end

-- draws random numbers until one is above 0.9, then fails on purpose
local function task()
  while true do
    local value = math.random()
    print(("." .. value))
    braid.sleep(value / 20)
    if value > 0.9 then
      print("Closing thread")
      error("Stop now!")
    end
  end
end

threading.excepthook = handler
local thread = threading.Thread{target = task}
thread:start()
thread:join()
print("Main continuing on...")
