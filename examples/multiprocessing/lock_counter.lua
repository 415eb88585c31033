-- Processes adding to a shared counter under a process-shared Lock, and a
-- lock whose holder is killed: the next acquire reports "owner died".
local braid = require "braid"
local mp = require "braid.multiprocessing"

local counter = mp.Value("q", 0)
local lock = mp.Lock()
local workers = {}
for i = 1, 4 do
    workers[i] = mp.Process{target = function(counter, lock)
        for _ = 1, 1000 do
            local _ <close> = lock:guard()
            counter.value = counter.value + 1
        end
    end, args = {counter, lock}}
    workers[i]:start()
end
for _, w in ipairs(workers) do w:join() end
print("counter", counter.value)

local held = mp.Event()
local p = mp.Process{target = function(lock, held)
    lock:acquire()
    held:set()
    require("braid").sleep(60)
end, args = {lock, held}}
p:start()
held:wait()
p:kill()
p:join()
print("holder exit code", p.exitcode)
print("acquire:", lock:acquire(true, 5))
