-- thread_task_handoff in braid: round trips through two braid.queue.Queue.
-- handoff_thread_task: a braid thread puts i on q1, an asyncio task (in the
-- main thread's loop) gets it with the ordinary q1:get() and answers on q2,
-- where the thread gets it. handoff_thread_thread: the same with a second
-- braid thread in place of the task. handoff_task_vs_thread is the ratio of
-- the two (goal: within 2x, so >= 0.5). usage: braid thread_task_handoff.lua [N]
local braid = require "braid"
local threading = require "braid.threading"
local queue = require "braid.queue"
local asyncio = require "braid.asyncio"
local n = tonumber(arg and arg[1]) or tonumber(os.getenv("BENCH_N")) or 20000

-- the driving thread: n timed round trips after a warm-up; returns trips/s
local function driver(q1, q2, n)
  local braid = require "braid"
  for i = 1, 1000 do
    q1:put(i)
    assert(q2:get() == i)
  end
  local t0 = braid.monotonic()
  for i = 1, n do
    q1:put(i)
    assert(q2:get() == i)
  end
  local dt = braid.monotonic() - t0
  q1:put(-1)
  return n / dt
end

-- the echo side: a task or a thread, the same code
local function echo(q1, q2)
  while true do
    local v = q1:get()
    if v < 0 then return end
    q2:put(v)
  end
end

local function run_driver(q1, q2)
  local t = threading.Thread{target = driver, args = {q1, q2, n}}
  t:start()
  return t
end

-- thread -> task -> thread
local task_rate = asyncio.run(function()
  local q1, q2 = queue.Queue(), queue.Queue()
  local t = run_driver(q1, q2)
  echo(q1, q2) -- q1:get() suspends only this task
  return t:result()
end)

-- thread -> thread
local q1, q2 = queue.Queue(), queue.Queue()
local e = threading.Thread{target = echo, args = {q1, q2}}
e:start()
local thread_rate = run_driver(q1, q2):result()
e:join()

print(string.format("RESULT handoff_thread_task %.0f", task_rate))
print(string.format("RESULT handoff_thread_thread %.0f", thread_rate))
print(string.format("RESULT handoff_task_vs_thread %.3f", task_rate / thread_rate))
