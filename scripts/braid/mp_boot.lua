-- braid.mp_boot: what a spawned child runs its target with. A plain
-- Process's target runs without loading braid.multiprocessing and
-- braid.threading (most of a spawned child's start-up when they were
-- loaded for every child); the child's Process object waits here, and
-- braid.multiprocessing adopts it as current_process() when something in
-- the child requires it. A subclass (cls), or a child where the module is
-- loaded already (the target's upvalues required it), takes the module's
-- own _bootstrap.
local B = {}
local unpack, rawset = table.unpack, rawset

function B._run(self, cls, target, args)
    local mp = package.loaded["braid.multiprocessing"]
    if cls ~= nil or mp ~= nil then
        return (mp or require("braid.multiprocessing"))._bootstrap(self, cls, target, args)
    end
    args = args or {}
    rawset(self, "_target", target)
    rawset(self, "_args", args)
    B._pending = self
    if target ~= nil then -- Process.run (threading.Thread.run)
        return target(unpack(args, 1, args.n or #args))
    end
end

return B
