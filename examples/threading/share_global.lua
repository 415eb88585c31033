-- A thread hands data back through a global that holds a shared table.
-- Port of "share data using global variables", adapted to braid's states.
local braid = require "braid"
local shared = require "braid.shared"
local threading = require "braid.threading"

-- Every braid thread runs its own Lua state. Globals a target uses are
-- copied into that state when the thread starts, so assigning a plain
-- global there changes only the thread's copy. A shared table is a braid
-- object: the copy is a reference to the same table, so writes are seen by
-- everyone.
plain = nil
data = shared.table()

local function task()
  braid.sleep(0.1)
  plain = "set in the thread's own state only"
  data.value = "Hello from a new thread"
end

local thread = threading.Thread{target = task}
thread:start()
thread:join()
print(data.value)
print(("plain global in main: %s"):format(plain))
