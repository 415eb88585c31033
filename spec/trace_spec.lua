-- Seeing a run (API.md §9), the timeline part: object names and the trace.
local threading = require "braid.threading"
local queue = require "braid.queue"
local futures = require "braid.futures"

describe("object names", function()
  it("every primitive, queue and executor takes name= and keeps the positional form", function()
    local l = threading.Lock{name = "db"}
    assert.equal("db", l:get_name())
    assert.is_nil(threading.Lock():get_name())
    assert.equal("r", threading.RLock{name = "r"}:get_name())
    local c = threading.Condition{lock = l, name = "cv"}
    assert.equal("cv", c:get_name())
    assert.equal("cv2", threading.Condition{name = "cv2"}:get_name())
    local s = threading.Semaphore{value = 3, name = "sem"}
    assert.equal("sem", s:get_name())
    assert.is_true(s:acquire(false) and s:acquire(false) and s:acquire(false))
    assert.is_false(s:acquire(false))
    assert.equal("bs", threading.BoundedSemaphore{value = 2, name = "bs"}:get_name())
    assert.equal(2, threading.Semaphore(2):_value())
    assert.equal("ev", threading.Event{name = "ev"}:get_name())
    local b = threading.Barrier{parties = 1, name = "bar"}
    assert.equal("bar", b:get_name())
    assert.equal(0, b:wait())
    local q = queue.Queue{maxsize = 8, name = "jobs"}
    assert.equal("jobs", q:get_name())
    assert.equal(8, q:maxsize())
    assert.equal("lq", queue.LifoQueue{name = "lq"}:get_name())
    assert.equal("sq", queue.SimpleQueue{name = "sq"}:get_name())
    local ex = futures.ThreadPoolExecutor{max_workers = 2, name = "pool"}
    assert.equal("pool", ex:get_name())
    assert.equal(3, ex:submit(function() return 3 end):result())
    ex:shutdown()
  end)

  it("unnamed objects are labelled Kind#N; set_name renames, nil clears", function()
    local l = threading.Lock()
    assert.matches("^Lock#%d+$", l:_label())
    assert.matches("^Queue#%d+$", queue.Queue():_label())
    l:set_name("renamed")
    assert.equal("renamed", l:get_name())
    assert.equal("renamed", l:_label())
    l:set_name(nil)
    assert.is_nil(l:get_name())
  end)

  it("a name crosses with the object to another thread", function()
    local l = threading.Lock{name = "shared-lock"}
    local t = threading.Thread{target = function(lk)
      local n = lk:get_name()
      lk:set_name("from-thread")
      return n
    end, args = {l}}
    t:start()
    assert.equal("shared-lock", t:result())
    assert.equal("from-thread", l:get_name())
  end)

  it("Thread has get_name/set_name alongside .name", function()
    local t = threading.Thread{target = function() end, name = "w"}
    assert.equal("w", t:get_name())
    t:set_name("w2")
    assert.equal("w2", t.name)
  end)

  it("a name that is not a string is a clear error", function()
    assert.has_error(function() threading.Lock{name = 3} end,
                     "bad option 'name' (string expected, got number)")
    assert.has_error(function() queue.Queue{name = {}} end,
                     "bad option 'name' (string expected, got table)")
    assert.has_error(function() futures.ThreadPoolExecutor{name = true} end,
                     "bad option 'name' (string expected, got boolean)")
    assert.has_error(function() threading.Lock():set_name(false) end)
  end)
end)
