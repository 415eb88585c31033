-- Gets the Thread object of the program's main thread.
-- Port of the main_thread() example.
local threading = require "braid.threading"

local thread = threading.main_thread()
print(thread)
