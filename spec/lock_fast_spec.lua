-- Lock's fast path (bindings/lsync.c): the box an OS thread used last is
-- remembered, and forgotten when any Lock box is collected. These check
-- that a remembered box never vouches for anything else.
local threading = require "braid.threading"
local Error = require("braid").Error

describe("Lock fast path", function()
  it("alternating locks keep their own state", function()
    local a, b = threading.Lock(), threading.Lock()
    for _ = 1, 100 do
      assert.is_true(a:acquire())
      assert.is_false(b:locked())
      assert.is_true(b:acquire())
      assert.is_false(a:acquire(false))
      a:release()
      assert.is_true(b:locked())
      b:release()
      assert.is_false(a:locked())
    end
  end)

  it("rejects another box or value after a Lock was remembered", function()
    local l = threading.Lock()
    local others = { threading.RLock(), threading.Event(), threading.Semaphore(1), io.stdout, {}, 1 }
    for _, o in ipairs(others) do
      l:acquire(); l:release() -- l is remembered now
      local ok, e = pcall(l.acquire, o)
      assert.is_false(ok)
      ok, e = pcall(l.release, o)
      assert.is_false(ok)
      assert.is_truthy(tostring(e))
    end
  end)

  it("a release of an unlocked, remembered lock is still an error", function()
    local l = threading.Lock()
    l:acquire(); l:release()
    local ok, e = pcall(l.release, l)
    assert.is_false(ok)
    assert.is_true(Error.is(e, "RuntimeError"))
  end)

  it("collected locks are forgotten (their memory may be reused)", function()
    -- lock boxes and other userdata of the same size are made and
    -- collected over and over: under ASan or valgrind a stale remembered
    -- box would be a use after free, and here a wrong answer
    local acquire, release = threading.Lock().acquire, threading.Lock().release
    for i = 1, 300 do
      local l = threading.Lock()
      assert.is_true(acquire(l))
      release(l)
      l = nil
      collectgarbage() -- runs its __gc
      collectgarbage() -- frees it
      local others = {}
      for j = 1, 8 do
        others[j] = j % 2 == 0 and threading.Event() or threading.Semaphore(1)
      end
      for _, o in ipairs(others) do
        assert.is_false((pcall(acquire, o)))
        assert.is_false((pcall(release, o)))
      end
      assert.is_true(i > 0)
    end
  end)

  it("each thread remembers its own box", function()
    local l = threading.Lock()
    local n = 0
    local ts = {}
    for i = 1, 4 do
      ts[i] = threading.Thread(function(lk)
        for _ = 1, 2000 do
          lk:acquire()
          lk:release()
        end
      end, { l })
      ts[i]:start()
    end
    for _ = 1, 2000 do
      l:acquire(); n = n + 1; l:release()
    end
    for i = 1, 4 do ts[i]:join() end
    assert.equal(2000, n)
    assert.is_false(l:locked())
  end)
end)
