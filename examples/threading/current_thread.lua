-- Gets the Thread object of the code that is running: here the main thread.
-- Port of the current_thread() example.
local threading = require "braid.threading"

local thread = threading.current_thread()
print(thread)
