-- native_id is nil until the thread starts, then the kernel's thread id.
-- Port of the native thread identifier example.
local threading = require "braid.threading"

local thread = threading.Thread()
print(thread.native_id)
thread:start()
print(thread.native_id)
thread:join()
