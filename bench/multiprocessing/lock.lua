-- Process-shared Lock acquire + release, uncontended (issue 9).
local braid = require "braid"
local mp = require "braid.multiprocessing"

local l = mp.Lock()
assert(l:acquire() and not l:acquire(false))
l:release()
local N, best = 1000000, 0
for _ = 1, 3 do
    local t0 = braid.monotonic()
    for _ = 1, N do
        l:acquire()
        l:release()
    end
    local r = N / (braid.monotonic() - t0)
    if r > best then best = r end
end
print(("RESULT mp_lock_acquire_release %.1f"):format(best))
