-- braid showcase: values cross between Lua states by the codec rules.
local braid = require "braid"

local rates = {eur = 1.08, gbp = 1.27}
local function convert(amount, cur) return amount * rates[cur] end

-- run convert in a brand-new Lua state: its upvalue `rates` crosses too
print("100 GBP in USD:", braid.transfer_test(convert, 100, "gbp"))

-- errors come back as the same value, with the remote traceback
local ok, err = pcall(braid.transfer_test, function() error({code = 42}) end)
print("remote error code:", err.code)

print(("braid %s on %d cores"):format(braid.version, braid.cpu_count()))
