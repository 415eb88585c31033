-- The process's resident set size in KB (VmRSS from /proc/self/status),
-- for the benchmarks that measure memory per item. Load it with
-- dofile(<bench dir> .. "/../lib/rss.lua").
return function()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
