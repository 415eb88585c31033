-- Creates a daemon (background) thread and reports its daemon flag.
-- Port of the daemon thread example.
local threading = require "braid.threading"

-- daemon threads do not keep the program alive at exit
local thread = threading.Thread{daemon = true}
print(thread.daemon)
