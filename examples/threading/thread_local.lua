-- One thread-local object, two threads: each sees only the value it stored.
-- Port of the thread-local storage example (threading.local()).
local braid = require "braid"
local threading = require "braid.threading"

-- runs in the new thread: store under the same field name as main did
local function task(shared_local)
  braid.sleep(0.1)
  shared_local.value = 33
  print(("Thread stored: %d"):format(shared_local.value))
end

-- `local` is a Lua keyword, hence the index syntax (or threading.thread_local())
local local_storage = threading["local"]()
local_storage.value = 100
print(("Main stored: %d"):format(local_storage.value))

local thread = threading.Thread{target = task, args = {local_storage}}
thread:start()
thread:join()
-- the new thread's assignment did not touch main's slot
print(("Main sees: %d"):format(local_storage.value))
