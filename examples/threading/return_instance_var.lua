-- A Thread subclass stores its outcome in an instance field that main reads.
-- Port of "return values from threads via instance variables".
local braid = require "braid"
local shared = require "braid.shared"
local threading = require "braid.threading"

local CustomThread = threading.Thread:extend()

-- the constructor runs the base one first, then sets up the field. The
-- instance crosses to the new thread as a copy, so a plain field assigned
-- there would stay in the thread: the result travels in a shared table,
-- which both copies reference
function CustomThread:init()
  threading.Thread.init(self)
  self.result_box = shared.table()
end

function CustomThread:run()
  braid.sleep(0.1)
  self.result_box.value = "Hello from a new thread"
end

local thread = CustomThread()
thread:start()
thread:join()
local data = thread.result_box.value
print(data)
