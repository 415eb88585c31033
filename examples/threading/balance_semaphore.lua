-- The balance race fixed with a Semaphore(1) instead of a Lock.
-- Second solution to the tutorial's Lesson 4 exercise.
local shared = require "braid.shared"
local threading = require "braid.threading"

local N = 100000

-- a semaphore with one slot admits one thread at a time, like a mutex
local function change(account, semaphore, delta)
  for _ = 1, N do
    semaphore:acquire()
    account.balance = account.balance + delta
    semaphore:release()
  end
end

local account = shared.table{balance = 0}
local semaphore = threading.Semaphore(1)
local adder = threading.Thread{target = change, args = {account, semaphore, 1}}
local subtracter = threading.Thread{target = change, args = {account, semaphore, -1}}
adder:start()
subtracter:start()
adder:join()
subtracter:join()
print(("Final balance: %d (expected 0)"):format(account.balance))
