-- The Lua examples in docs/ run: each page's ```lua blocks, in order, as
-- one script (later blocks may use what earlier ones defined), and every
-- `--> text` comment matches what that line printed. Pages made of
-- fragments that only illustrate one call are listed and skipped.
--
-- `stmt --> text` says the last line stmt printed is text; own-line
-- `--> text` comments right after it continue the expectation over the
-- lines before. Whitespace runs compare equal (print's tabs may be written
-- as spaces) and `…` stands for any text.
local exe = os.getenv("BRAID_EXE") or "build/braid"
local FRAGMENTS = {["docs/threading.md"] = true, ["docs/mpi.md"] = true} -- mpi: needs mpiexec
local PRELUDE = 'braid = require "braid"; threading = require "braid.threading"; '
  .. 'queue = require "braid.queue"; shared = require "braid.shared"; '
  .. 'futures = require "braid.futures"\n'
local MARK = "\1check"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function normalize(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- A Lua pattern for an expected line: literal, with … matching anything.
local function pattern(expected)
  local parts = {}
  for piece in (normalize(expected) .. "…"):gmatch("(.-)…") do
    parts[#parts + 1] = piece:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  end
  return "^" .. table.concat(parts, ".-") .. "$"
end

-- The script for a page's blocks, with a marker printed after each line
-- (or group of lines) that carries `-->` comments; returns it and the list
-- of expectations ({line = source line, lines = {expected...}}).
local function instrument(blocks)
  local out, checks = {PRELUDE}, {}
  local lines = {}
  for _, code in ipairs(blocks) do
    for line in code:gmatch("([^\n]*)\n?") do lines[#lines + 1] = line end
  end
  local group
  for i, line in ipairs(lines) do
    out[#out + 1] = line
    local expected = line:match("%-%->%s?(.*)$")
    if expected then
      group = group or {line = line, lines = {}}
      table.insert(group.lines, expected)
      local nextline = lines[i + 1]
      if not (nextline and nextline:match("^%s*%-%->")) then
        checks[#checks + 1] = group
        group = nil
        out[#out + 1] = ("io.stdout:write(%q) io.stdout:flush()"):format(MARK .. "\n")
      end
    end
  end
  return table.concat(out, "\n"), checks
end

-- Checks the output against the expectations; returns nil or a message.
local function compare(output, checks)
  local segments, from = {}, 1
  while true do
    local s, e = output:find(MARK .. "\n", from, true)
    if not s then break end
    segments[#segments + 1] = output:sub(from, s - 1)
    from = e + 1
  end
  for i, check in ipairs(checks) do
    local seg = segments[i]
    if not seg then return ("no output reached %q"):format(check.line) end
    local got = {}
    for l in seg:gmatch("([^\n]*)\n") do got[#got + 1] = l end
    local k = #check.lines
    for j = 1, k do
      local actual = got[#got - k + j]
      if not actual or not normalize(actual):match(pattern(check.lines[j])) then
        return ("%q\n  expected: %s\n  printed:  %s"):format(check.line, check.lines[j],
          actual or "(nothing)")
      end
    end
  end
end

describe("docs snippets", function()
  it("compare `-->` comments, with … as a wildcard", function()
    local _, checks = instrument({"print(1, 2) --> 1 2\nprint('a\\nb')\n--> a\n--> b\n"})
    assert.equal(2, #checks)
    assert.same({"a", "b"}, checks[2].lines)
    assert.is_nil(compare("1\t2\n" .. MARK .. "\na\nb\n" .. MARK .. "\n", checks))
    assert.truthy(compare("1 3\n" .. MARK .. "\na\nb\n" .. MARK .. "\n", checks))
    assert.truthy(normalize("braid 0.1 on 2 cores"):match(pattern("braid … on … cores")))
    assert.falsy(normalize("braid 0.1 on 2 threads"):match(pattern("braid … on … cores")))
  end)

  local pages = io.popen("ls docs/*.md")
  for page in pages:lines() do
    if not FRAGMENTS[page] then
      local blocks = {}
      for code in read(page):gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end
      if #blocks > 0 then
        it("of " .. page .. " run and print what their --> comments say", function()
          local source, checks = instrument(blocks)
          local script = os.tmpname()
          local f = assert(io.open(script, "w"))
          f:write(source)
          f:close()
          -- under TSan a fork'd child may start threads: the process has
          -- the live dump's idle SIGQUIT watcher (holding no lock)
          local tsan = os.getenv("TSAN_OPTIONS")
          local env = tsan and ("TSAN_OPTIONS=%q "):format(tsan .. ":die_after_fork=0") or ""
          local p = io.popen(("%s%q %q 2>&1 </dev/null"):format(env, exe, script))
          local out = p:read("a")
          local ok = p:close()
          os.remove(script)
          assert.is_true(ok, out)
          local err = compare(out, checks)
          assert(not err, page .. ": " .. tostring(err))
        end)
      end
    end
  end
  pages:close()
end)
