-- A deliberate deadlock, seen with braid.dump(): two threads take the same
-- two named locks in opposite order. The dump (on stderr) shows each thread
-- blocked on the lock the other holds, with its traceback; the program then
-- carries on, cancels both threads and exits. `kill -QUIT <pid>` or
-- `braid --dump-on-timeout 2 dump_deadlock.lua` print the same dump.
local braid = require "braid"
local threading = braid.threading

local accounts = threading.Lock{name = "accounts"}
local ledger = threading.Lock{name = "ledger"}
local both_hold_one = threading.Barrier(2)

function transfer(from, to) -- takes accounts, then ledger
  from:acquire()
  both_hold_one:wait()
  to:acquire()
end

function audit(first, second) -- takes ledger, then accounts
  first:acquire()
  both_hold_one:wait()
  second:acquire()
end

local t1 = threading.Thread{name = "transfer-thread", target = function() transfer(accounts, ledger) end}
local t2 = threading.Thread{name = "audit-thread", target = function() audit(ledger, accounts) end}
t1:start()
t2:start()
t1:join(0.5) -- give them time to get stuck
print("stuck:", t1:is_alive() and t2:is_alive())

braid.dump() -- every thread, what it waits for, and where

t1:cancel() -- a blocked acquire is cancellable
t2:cancel()
t1:join()
t2:join()
print("both threads cancelled; the program carried on")
