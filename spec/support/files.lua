-- Helpers for specs that run the braid executable on scripts in temporary
-- files: shell quoting, temp files removed by remove_tmpfiles (call it in
-- after_each), whole-file read and write.
local M = {}

M.EXE = os.getenv("BRAID_EXE") or "build/braid"

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local tmpfiles = {}

-- A fresh temporary file name; with a suffix, that name plus the suffix
-- (both are removed).
function M.tmpname(suffix)
  local name = os.tmpname()
  tmpfiles[#tmpfiles + 1] = name
  if suffix then
    name = name .. suffix
    tmpfiles[#tmpfiles + 1] = name
  end
  return name
end

function M.remove_tmpfiles()
  for i = #tmpfiles, 1, -1 do
    os.remove(tmpfiles[i])
    tmpfiles[i] = nil
  end
end

function M.writefile(name, text)
  local f = assert(io.open(name, "wb"))
  f:write(text)
  f:close()
  return name
end

function M.readfile(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

return M
