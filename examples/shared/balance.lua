-- The balance race: two threads each add 1 to a shared balance N times.
-- `t.balance = t.balance + 1` is a read and a separate write, so updates
-- can be lost; shared.update or the table's lock make each step atomic.
local threading = require "braid.threading"
local shared = require "braid.shared"

local N = tonumber(arg and arg[1]) or 1000000

local function run(body)
  local account = shared.table{balance = 0}
  local threads = {}
  for i = 1, 2 do
    threads[i] = threading.Thread{target = body, args = {account, N}}
    threads[i]:start()
  end
  for _, t in ipairs(threads) do t:join() end
  return account.balance
end

local racy = run(function(account, n)
  for _ = 1, n do account.balance = account.balance + 1 end
end)
print(string.format("racy read-then-write: %d of %d (%d lost)", racy, 2 * N, 2 * N - racy))

local updated = run(function(account, n)
  local shared = require "braid.shared"
  local function add1(b) return b + 1 end
  for _ = 1, n do shared.update(account, "balance", add1) end
end)
print(string.format("shared.update:        %d of %d", updated, 2 * N))

local locked = run(function(account, n)
  local lock = require("braid.shared").lock(account)
  for _ = 1, n do
    lock:acquire()
    account.balance = account.balance + 1
    lock:release()
  end
end)
print(string.format("with the table's lock: %d of %d", locked, 2 * N))
