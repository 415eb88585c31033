-- The Lua examples in docs/ run: each page's ```lua blocks, in order, as
-- one script (later blocks may use what earlier ones defined). Pages made
-- of fragments that only illustrate one call are listed and skipped.
local exe = os.getenv("BRAID_EXE") or "build/braid"
local FRAGMENTS = {["docs/threading.md"] = true}
local PRELUDE = 'braid = require "braid"; threading = require "braid.threading"; '
  .. 'queue = require "braid.queue"; shared = require "braid.shared"; '
  .. 'futures = require "braid.futures"\n'

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("docs snippets", function()
  local pages = io.popen("ls docs/*.md")
  for page in pages:lines() do
    if not FRAGMENTS[page] then
      local blocks = {}
      for code in read(page):gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end
      if #blocks > 0 then
        it("of " .. page .. " run", function()
          local script = os.tmpname()
          local f = assert(io.open(script, "w"))
          f:write(PRELUDE, table.concat(blocks, "\n"))
          f:close()
          local p = io.popen(("%q %q 2>&1 </dev/null"):format(exe, script))
          local out = p:read("a")
          local ok = p:close()
          os.remove(script)
          assert.is_true(ok, out)
        end)
      end
    end
  end
  pages:close()
end)
