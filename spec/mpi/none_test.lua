-- Run by tools/mpi_test.sh: mpiexec -n 1 braid -m braid.mpi spec/mpi/none_test.lua
local braid = require "braid"
local futures = require "braid.futures"
local ok, e = pcall(futures.MPIPoolExecutor)
assert(not ok and braid.Error.is(e, "RuntimeError") and tostring(e):match("no worker ranks"), tostring(e))
local comm = require("braid.mpi").COMM_WORLD
assert(comm.size == 1 and comm.bcast(comm, "solo") == "solo")
print("none_test done")
