-- A thread that has not been started yet is not alive.
-- Port of the is_alive example.
local threading = require "braid.threading"

local thread = threading.Thread()
print(thread:is_alive())
