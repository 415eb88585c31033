-- The balance race fixed: a Lock makes each read-modify-write one step.
-- Solution to the tutorial's Lesson 4 exercise, with a mutex.
local shared = require "braid.shared"
local threading = require "braid.threading"

local N = 100000

-- the lock is held across the read and the write, so no update is lost
local function add(account, lock)
  for _ = 1, N do
    local _ <close> = lock:guard()
    account.balance = account.balance + 1
  end
end

local function subtract(account, lock)
  for _ = 1, N do
    local _ <close> = lock:guard()
    account.balance = account.balance - 1
  end
end

local account = shared.table{balance = 0}
local lock = threading.Lock()
local adder = threading.Thread{target = add, args = {account, lock}}
local subtracter = threading.Thread{target = subtract, args = {account, lock}}
adder:start()
subtracter:start()
adder:join()
subtracter:join()
print(("Final balance: %d (expected 0)"):format(account.balance))

-- shared tables also offer an atomic update without a separate lock
shared.update(account, "balance", function(v) return v + 10 end)
print(("After shared.update: %d"):format(account.balance))
