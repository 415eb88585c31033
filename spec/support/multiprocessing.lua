-- Helpers shared by the multiprocessing, process pool and manager specs:
-- the start methods to run, error kinds, and the no-child-left check.
local braid = require "braid"
local mp = require "braid.multiprocessing"
local Error = braid.Error
local assert = require "luassert"

local S = {}

S.EXE = os.getenv("BRAID_EXE") or "build/braid"
-- TSan's runtime ends a child forked from a process whose other threads
-- live on (exit code 66): under TSan the fork method is left to the plain
-- and ASan runs
S.TSAN = os.getenv("TSAN_OPTIONS") ~= nil
S.METHODS = S.TSAN and {"spawn"} or {"spawn", "fork"}

-- The kind of the error fn(...) raises (or its message, for a plain error).
function S.kind_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  if Error.is(err) then return err.kind end
  return tostring(err)
end

-- Kills what is still running, then checks nothing was left unreaped.
function S.no_child_left()
  for _, p in ipairs(mp.active_children()) do
    p:kill()
    p:join()
  end
  assert.are.equal(0, mp._count(), "a child was not reaped")
  assert.is_false(mp._has_children(), "a child process remains")
end

-- Runs the Lua source code as a script with the braid executable; returns
-- its stdout (read to EOF: every process holding the pipe has ended).
function S.run_script(code)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local h = io.popen(S.EXE .. " " .. script)
  local out = h:read("a")
  h:close()
  os.remove(script)
  return out
end

return S
