-- What a spawned process loads at start (issue 9, spawn speed): libmpi only
-- in processes that require braid.mpi (its C half is the plugin
-- braid_mpi.so), and braid's embedded scripts loaded as bytecode that keeps
-- its debug information (tracebacks name [braid.x]:line).
local mp = require "braid.multiprocessing"
local support = require "spec.support.multiprocessing"

-- 0: this process maps no libmpi; 3: it does; 4: /proc/self/maps unreadable
local function libmpi_mapped()
  local f = io.open("/proc/self/maps")
  if not f then return 4 end
  local maps = f:read("a")
  f:close()
  if not maps:find("libc[.-]") then return 4 end
  return maps:find("libmpi", 1, true) and 3 or 0
end

describe("spawn start", function()
  after_each(support.no_child_left)

  it("a spawned child that uses no MPI does not map libmpi", function()
    for _ = 1, 3 do
      local p = mp.get_context("spawn"):Process{target = function() os.exit(libmpi_mapped()) end}
      p:start()
      p:join()
      assert.are.equal(0, p.exitcode)
    end
  end)

  it("the braid executable does not map libmpi until braid.mpi is required", function()
    local out = support.run_script([[
      require "braid.multiprocessing"
      require "braid.futures"
      local f = assert(io.open("/proc/self/maps"))
      local maps = f:read("a")
      f:close()
      print(maps:find("libmpi", 1, true) and "mapped" or "not mapped")
    ]])
    assert.are.equal("not mapped\n", out)
  end)

  it("embedded scripts keep their debug information (tracebacks name [braid.x]:line)", function()
    local _, tb = xpcall(mp.Process.join, debug.traceback, 42) -- not a Process
    assert.matches("^%[braid%.multiprocessing%]:%d+: bad argument", tb)
    assert.matches("\n%s*%[braid%.multiprocessing%]:%d+: in upvalue 'check_open'", tb)
    local info = debug.getinfo(mp.Process.start, "SL")
    assert.are.equal("=[braid.multiprocessing]", info.source)
    assert.is_true(info.linedefined > 0)
    assert.is_not_nil(next(info.activelines))
  end)
end)
