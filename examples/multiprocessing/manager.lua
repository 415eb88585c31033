-- A Manager's dict, list and Lock shared by worker processes (Python's
-- "Sharing state between processes: server process" example, and the
-- tutorials' manager word count).
local mp = require "braid.multiprocessing"

local function count_words(lines, counts, lock, log, id)
    local mine = {}
    for _, line in ipairs(lines) do
        for word in line:gmatch("%a+") do
            word = word:lower()
            mine[word] = (mine[word] or 0) + 1
        end
    end
    -- one read-modify-write per word, under the manager's Lock
    local _ <close> = lock:guard()
    for word, n in pairs(mine) do
        counts[word] = (counts[word] or 0) + n
    end
    log:append("worker " .. id .. " done")
end

local text = {
    {"the quick brown fox", "jumps over the lazy dog"},
    {"the dog sleeps", "the fox runs"},
    {"a quick brown dog"},
}

local manager <close> = mp.Manager()
local counts, lock, log = manager:dict(), manager:Lock(), manager:list()
local workers = {}
for i, lines in ipairs(text) do
    workers[i] = mp.Process{target = count_words, args = {lines, counts, lock, log, i}}
    workers[i]:start()
end
for _, w in ipairs(workers) do
    w:join()
end

local words = counts:keys()
table.sort(words)
for _, word in ipairs(words) do
    print(word, counts[word])
end
print(#log, "workers reported")
