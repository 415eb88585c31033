-- Two threads add to and subtract from one shared balance without a lock:
-- updates get lost. The race condition of the tutorial's Lesson 4 exercise.
local shared = require "braid.shared"
local threading = require "braid.threading"

local N = 100000

-- `account.balance = account.balance + 1` is a read followed by a write;
-- the other thread (truly in parallel: no GIL) can write in between, and
-- one of the two updates is lost
local function add(account)
  for _ = 1, N do
    account.balance = account.balance + 1
  end
end

local function subtract(account)
  for _ = 1, N do
    account.balance = account.balance - 1
  end
end

-- a plain table would be copied into each thread; a shared table is the
-- same table for everyone
local account = shared.table{balance = 0}
local adder = threading.Thread{target = add, args = {account}}
local subtracter = threading.Thread{target = subtract, args = {account}}
adder:start()
subtracter:start()
adder:join()
subtracter:join()
-- should be 0; with the race it is usually something else, and changes
-- from run to run
print(("Final balance: %d (expected 0)"):format(account.balance))
