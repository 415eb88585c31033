-- braid.queue's Lua half: the exception names of Python's queue module, as
-- braid.Error kinds, so `braid.Error.is(err, queue.Empty)` reads like Python.
local M = ...

M.Empty = "Empty"
M.Full = "Full"
M.ShutDown = "ShutDown"

return M
