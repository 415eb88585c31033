-- Main asks a worker to stop by setting an Event the worker checks.
-- Port of "gracefully stop a thread".
local braid = require "braid"
local threading = require "braid.threading"

-- five rounds of work, looking at the stop flag after each pause
local function task(shared_event)
  for _ = 1, 5 do
    braid.sleep(0.1)
    if shared_event:is_set() then
      break
    end
    print("Worker thread running...")
  end
  print("Worker closing down")
end

local event = threading.Event()
local thread = threading.Thread{target = task, args = {event}}
thread:start()
-- let the worker do a couple of rounds (a quarter second, as the
-- tutorial lets it run for a while), then stop it
braid.sleep(0.25)
print("Main stopping thread")
event:set()
thread:join()
