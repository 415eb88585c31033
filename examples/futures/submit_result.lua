-- concurrent.futures tutorial: submit a call, get its result.
local futures = require "braid.futures"

local function pow(base, exp) return base ^ exp end

local ex <close> = futures.ThreadPoolExecutor(1)
local future = ex:submit(pow, 323, 1235)
print("pow result is a " .. math.type(future:result()))
local f2 = ex:submit(function(a, b) return a + b end, 2, 3)
print("2 + 3 =", f2:result())
