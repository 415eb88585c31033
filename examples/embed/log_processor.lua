-- Consumes log lines that the host's C threads put into `lines` (a braid
-- Queue made in C), counts them by level on a ThreadPoolExecutor in batches,
-- and returns a summary table to the host. `logfmt` is the host's own C
-- library, opened in every worker state by braid_set_state_init.
local futures = require "braid.futures"

local function count_batch(batch)
  local counts = {}
  for _, line in ipairs(batch) do
    local level = logfmt.level(line) -- host C function, in the worker's state
    counts[level] = (counts[level] or 0) + 1
  end
  return counts
end

return function(lines, producers)
  local pool <close> = futures.ThreadPoolExecutor{max_workers = 3}
  local pending, batch, finished = {}, {}, 0
  while finished < producers do
    local line = lines:get() -- blocks until a host thread puts a line
    if line == nil then      -- each producer ends with nil
      finished = finished + 1
    else
      batch[#batch + 1] = line
    end
    if #batch == 50 or (finished == producers and #batch > 0) then
      pending[#pending + 1] = pool:submit(count_batch, batch)
      batch = {}
    end
  end
  local summary = {batches = #pending}
  for _, f in ipairs(pending) do
    for level, n in pairs(f:result()) do summary[level] = (summary[level] or 0) + n end
  end
  return summary
end
