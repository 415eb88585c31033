-- Process start + join of an empty target, spawn and fork (issue 9).
local braid = require "braid"
local mp = require "braid.multiprocessing"

local function rate(method, secs)
    local ctx = mp.get_context(method)
    mp.fork_warning = false
    local function once()
        local p = ctx:Process{target = function() end}
        p:start()
        p:join()
        assert(p.exitcode == 0)
    end
    once()
    local n, t0 = 0, braid.monotonic()
    while braid.monotonic() - t0 < secs do
        once()
        n = n + 1
    end
    return n / (braid.monotonic() - t0)
end

print(("RESULT spawn_start_join %.1f"):format(rate("spawn", 1)))
print(("RESULT fork_start_join %.1f"):format(rate("fork", 1)))
