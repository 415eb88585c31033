-- Writes seed inputs for fuzz_decode: encodings of typical values. The fuzz
-- target runs it itself (BRAID_FUZZ_SEEDS), so the function chunks carry
-- the fuzzing process's MAC key.
local braid = require "braid"
local dir = assert(arg[1], "usage: make_corpus.lua DIR")
local t = {1, 2.5, "s", true, {x = {y = "z"}}, [false] = 0}
t.self = t
local up = {1, 2}
local function counter() up[1] = up[1] + 1; return up[1] end
local function reader() return up[1], string.upper("x") end
local seeds = {nil, true, 42, -7, 1.5, "hello\0world", {}, {1, 2, 3}, t,
  setmetatable({a = 1}, {__index = {b = 2}}), string, string.upper, {string, io.write},
  counter, {counter, reader}, function(...) return select("#", ...) end}
-- more back-references than the decoder keeps in stack slots (the rest go
-- on its refs thread): shared tables and repeated keys and strings
local many = {}
for i = 1, 40 do
  local r = {id = i, name = "user" .. i, vals = {i, i * 0.5, true}}
  many[i], many[80 - i] = r, r
end
seeds[17] = many
-- records of mixed shapes whose short keys (1-3 bytes) are back-references
-- too, keys equal to values, non-string keys and empty tables
local mixed = {}
for i = 1, 12 do
  mixed[i] = {x = i, id = "x", [i % 3 == 0 and "abc" or "ab"] = {}, [i] = i % 2 == 0}
end
seeds[18] = mixed
-- keys the decoder checks (floats, negatives) beside keys it need not (a
-- shared table as a key, then as a back-reference), and a sequence stored
-- backwards with holes (its items written by index)
local k, back = {}, {}
for i = 9, 1, -2 do back[i] = i end
seeds[19] = {[k] = 1, [2.5] = k, [-3] = "neg", [0] = {[k] = k}, back = back}
-- records with no shared table (written in plain mode: tables are no
-- back-reference targets), short strings (SSTR) and long ones (targets)
local plain = {}
for i = 1, 12 do
  plain[i] = {id = i, name = "user" .. i, note = ("n"):rep(14 + i % 4), vals = {i, i * 0.5, true}}
end
seeds[20] = plain
-- a decode of 4 KB or more lends the collector a credit (lcodec_dec.c)
local big = {}
for i = 1, 150 do big[i] = {id = i, name = "user" .. i, vals = {i, i * 0.5, true}} end
seeds[21] = big
for i = 1, 21 do
  local f = assert(io.open(("%s/seed%02d"):format(dir, i), "wb"))
  f:write(braid.encode(seeds[i]))
  f:close()
end
