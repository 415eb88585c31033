-- A small strict JSON decoder for the specs: objects become tables,
-- arrays sequences (with n), null becomes json.null. Raises on bad input.
local M = {}
M.null = setmetatable({}, {__tostring = function() return "null" end})

local escapes = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
                 r = "\r", t = "\t"}

function M.decode(s)
  local pos = 1
  local function fail(what)
    error(("bad JSON at byte %d: %s"):format(pos, what), 0)
  end
  local function ws()
    pos = s:find("[^ \t\r\n]", pos) or #s + 1
  end
  local value
  local function str()
    pos = pos + 1
    local parts = {}
    while true do
      local i = s:find('["\\%c]', pos)
      if not i then fail("unterminated string") end
      parts[#parts + 1] = s:sub(pos, i - 1)
      local c = s:sub(i, i)
      if c == '"' then
        pos = i + 1
        return table.concat(parts)
      elseif c == "\\" then
        local e = s:sub(i + 1, i + 1)
        if e == "u" then
          local hex = s:match("^%x%x%x%x", i + 2)
          if not hex then fail("bad \\u escape") end
          parts[#parts + 1] = utf8.char(tonumber(hex, 16))
          pos = i + 6
        elseif escapes[e] then
          parts[#parts + 1] = escapes[e]
          pos = i + 2
        else
          fail("bad escape")
        end
      else
        fail("control character in string")
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("key expected") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("':' expected") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("',' or '}' expected") end
      end
    elseif c == "[" then
      local t = {n = 0}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t.n = t.n + 1
        t[t.n] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("',' or ']' expected") end
      end
    elseif c == '"' then
      return str()
    elseif s:find("^true", pos) then
      pos = pos + 4
      return true
    elseif s:find("^false", pos) then
      pos = pos + 5
      return false
    elseif s:find("^null", pos) then
      pos = pos + 4
      return M.null
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" then fail("value expected") end
      pos = pos + #num
      return tonumber(num) or fail("bad number")
    end
  end
  local v = value()
  ws()
  if pos <= #s then fail("trailing data") end
  return v
end

return M
