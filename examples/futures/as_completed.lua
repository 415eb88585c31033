-- concurrent.futures tutorial: futures.as_completed over jobs that finish
-- out of order (the URL example, with sleeps standing in for downloads).
local braid = require "braid"
local futures = require "braid.futures"

local JOBS = { { "slow", 0.3 }, { "fast", 0.01 }, { "medium", 0.1 } }

local function load(name, delay)
  braid.sleep(delay)
  if name == "medium" then error("could not load " .. name) end
  return #name * 100
end

local ex <close> = futures.ThreadPoolExecutor(3)
local names = {}
local fs = {}
for _, job in ipairs(JOBS) do
  local f = ex:submit(load, job[1], job[2])
  names[f] = job[1]
  fs[#fs + 1] = f
end
for f in futures.as_completed(fs) do
  local ok, r = pcall(f.result, f)
  if ok then
    print(("%s page is %d bytes"):format(names[f], r))
  else
    print(("%s generated an exception: %s"):format(names[f], r))
  end
end
