-- Run by tools/mpi_test.sh: mpiexec -n 3 braid spec/mpi/spmd_test.lua
-- Every rank runs this (SPMD); each prints "ok <rank> <name>" per check.
local braid = require "braid"
local mpi = require "braid.mpi"
local comm = mpi.COMM_WORLD
local rank, size = comm.rank, comm.size

local function check(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  print(("%s %d %s%s"):format(ok and "ok" or "FAIL", rank, name, ok and "" or ": " .. tostring(err)))
  if not ok then os.exit(1) end
end

check("rank and size", function()
  assert(size == 3 and rank >= 0 and rank < 3)
  assert(comm:Get_rank() == rank and comm:Get_size() == size)
end)

check("send and recv around a ring, with tags", function()
  local right, left = (rank + 1) % size, (rank - 1) % size
  if rank == 0 then
    comm:send({from = rank, list = {1, 2, 3}}, right, 7)
    local v, src, tag = comm:recv(left, 7, 30)
    assert(v.from == left and #v.list == 3 and src == left and tag == 7)
  else
    local v, src, tag = comm:recv(left, 7, 30)
    assert(v.from == left and src == left and tag == 7)
    comm:send({from = rank, list = v.list}, right, 7)
  end
end)

check("recv from ANY_SOURCE with ANY_TAG", function()
  if rank == 0 then
    local seen = {}
    for _ = 1, size - 1 do
      local v, src, tag = comm:recv(nil, nil, 30)
      assert(v == src * 10 and tag == src)
      seen[src] = true
    end
    assert(seen[1] and seen[2])
  else
    comm:send(rank * 10, 0, rank)
  end
end)

check("functions cross, authenticated with rank 0's key", function()
  local k = 3
  local f = comm:bcast(rank == 0 and function(x) return x * k end or nil, 0)
  assert(f(14) == 42)
end)

check("bcast from a non-zero root, a 10 MB string", function()
  local v = comm:bcast(rank == 1 and string.rep("x", 10 * 1024 * 1024) or nil, 1, 60)
  assert(#v == 10 * 1024 * 1024)
end)

check("function chunks: rank 0's key is everyone's; another process's is refused", function()
  local bytes = comm:bcast(rank == 0 and braid.encode(function() return "mine" end) or nil, 0)
  assert(braid.decode(bytes)() == "mine")
  if rank == 2 then -- a braid outside this MPI job has its own key
    local p = io.popen(("%q -e %q"):format(arg[-1],
      'io.write(require("braid").encode(function() return "foreign" end))'))
    local foreign = p:read("a")
    p:close()
    assert(#foreign > 0)
    local ok, e = pcall(braid.decode, foreign)
    assert(not ok and braid.Error.is(e, "ValueError"), tostring(e))
  end
end)

check("recv timeout raises Timeout", function()
  local ok, e = pcall(comm.recv, comm, 0, 321, 0.05)
  assert(not ok and braid.Error.is(e, "Timeout"), tostring(e))
end)

check("bad arguments", function()
  assert(not pcall(comm.send, comm, 1, size))
  assert(not pcall(comm.send, comm, 1, 0, -3))
  local ok, e = pcall(comm.send, comm, require("braid.queue").Queue(), 0)
  assert(not ok and braid.Error.is(e, "TypeError"), tostring(e))
end)

check("barrier", function()
  comm:barrier(30)
end)
print("spmd_test done " .. rank)
