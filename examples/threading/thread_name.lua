-- Gives a thread a name when creating it, then reads it back.
-- Port of the thread name example.
local threading = require "braid.threading"

local thread = threading.Thread{name = "MyThread"}
print(thread.name)
