-- print writes each line whole: lines from concurrent threads never mix.
describe("print", function()
  local exe = os.getenv("BRAID_EXE") or "build/braid"

  it("writes every line of concurrent threads whole", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
      local threading = require "braid.threading"
      local start = threading.Barrier(4)
      local function shout(id)
        start:wait()
        local line = string.rep(string.char(64 + id), 200)
        for _ = 1, 500 do print(line, id) end
      end
      local ts = {}
      for i = 1, 4 do
        ts[i] = threading.Thread{target = shout, args = {i}}
        ts[i]:start()
      end
      for i = 1, 4 do ts[i]:join() end
    ]])
    f:close()
    local p = io.popen(("%q %q"):format(exe, script))
    local counts, bad = {0, 0, 0, 0}, 0
    for line in p:lines() do
      local letters, id = line:match("^(%u+)\t(%d)$")
      id = tonumber(id)
      if id and letters == string.rep(string.char(64 + id), 200) then
        counts[id] = counts[id] + 1
      else
        bad = bad + 1
      end
    end
    assert.is_true(p:close())
    os.remove(script)
    assert.equal(0, bad)
    assert.same({500, 500, 500, 500}, counts)
  end)

  it("formats like the standard print", function()
    local p = io.popen(("%q -e %q"):format(exe, "print(1, 2.5, nil, true, 'x')"))
    assert.equal("1\t2.5\tnil\ttrue\tx\n", p:read("a"))
    p:close()
  end)
end)
