-- Run by tools/mpi_test.sh: mpiexec -n 2 braid spec/mpi/error_test.lua must
-- end with an error exit: rank 1 raises while rank 0 waits for it forever.
local comm = require("braid.mpi").COMM_WORLD
if comm.rank == 1 then error("rank 1 fails") end
comm:recv(1, 0)
print("unreachable")
