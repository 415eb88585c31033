-- braid.trace_json: a small, fast JSON decoder for Chrome trace files.
-- decode(text) decodes one JSON value; each_event(text, fn) streams a trace's
-- events to fn one at a time, so a million-event file never becomes one
-- Lua table. Trace files come in two forms: {"traceEvents":[...], ...} and
-- the bare array [...], whose closing "]" may be missing (Chrome's format
-- allows it: a crashed recorder leaves one). A truncated last event is
-- dropped; any other malformation is an error naming the byte offset.
local M = ...

local byte, find, sub = string.byte, string.find, string.sub
local concat, tonumber, utf8char = table.concat, tonumber, utf8.char

-- Raised when the text ends inside a value: the caller decides whether a
-- truncated file is acceptable.
local EOF = setmetatable({}, {
  __tostring = function() return "unexpected end of JSON text" end,
})

local function fail(i, what)
  error(string.format("JSON: %s at byte %d", what, i), 0)
end

-- First non-space position at or after i, or nil at the end.
local function skip(s, i)
  return find(s, "[^ \t\r\n]", i)
end

local ESCAPES = {
  [34] = '"', [92] = "\\", [47] = "/", [98] = "\b",
  [102] = "\f", [110] = "\n", [114] = "\r", [116] = "\t",
}

-- s, i just past the opening quote: the string and the position after it.
local function parse_string(s, i)
  local j = find(s, '["\\]', i)
  if not j then error(EOF, 0) end
  if byte(s, j) == 34 then return sub(s, i, j - 1), j + 1 end
  local buf, n = {}, 0
  while true do
    j = find(s, '["\\]', i)
    if not j then error(EOF, 0) end
    n = n + 1
    buf[n] = sub(s, i, j - 1)
    local c = byte(s, j + 1)
    if byte(s, j) == 34 then
      return concat(buf), j + 1
    elseif c == 117 then -- \uXXXX, with surrogate pairs
      local cp = tonumber(sub(s, j + 2, j + 5), 16)
      if not cp then
        if j + 5 > #s then error(EOF, 0) end
        fail(j, "bad \\u escape")
      end
      i = j + 6
      if cp >= 0xD800 and cp <= 0xDBFF and sub(s, i, i + 1) == "\\u" then
        local lo = tonumber(sub(s, i + 2, i + 5), 16)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
          i = i + 6
        end
      end
      n = n + 1
      buf[n] = utf8char(cp)
    else
      local e = c and ESCAPES[c]
      if not e then
        if not c then error(EOF, 0) end
        fail(j, "bad escape")
      end
      n = n + 1
      buf[n] = e
      i = j + 2
    end
  end
end

local parse_value

-- The slow path of parse_object: anything the fast path's patterns do not
-- take (an empty object, escaped keys, odd spacing, errors).
local function object_rest(s, i, obj)
  i = skip(s, i)
  if not i then error(EOF, 0) end
  if byte(s, i) == 125 and next(obj) == nil then return obj, i + 1 end
  if byte(s, i) ~= 34 then fail(i, "expected a key") end
  local k, v
  k, i = parse_string(s, i + 1)
  i = skip(s, i)
  if not i then error(EOF, 0) end
  if byte(s, i) ~= 58 then fail(i, "expected ':'") end
  i = skip(s, i + 1)
  if not i then error(EOF, 0) end
  v, i = parse_value(s, i)
  obj[k] = v
  return nil, i
end

-- Objects are most of a trace, so the common shapes ("key":"plain string",
-- "key":number) are taken by one anchored pattern each.
local function parse_object(s, i) -- i just past "{"
  local obj = {}
  while true do
    local _, e, k = find(s, '^%s*"([^"\\]*)"%s*:%s*', i)
    local sep, e3
    if e then
      i = e + 1
      local c, v = byte(s, i)
      if c == 34 then -- a plain string and the separator after it, in one match
        local _, e2, str
        _, e2, str, sep = find(s, '^"([^"\\]*)"%s*([,}]?)', i)
        if e2 then
          v, i, e3 = str, e2 + 1, e2
        else
          v, i = parse_string(s, i + 1)
        end
      elseif c == 45 or (c and c >= 48 and c <= 57) then
        local _, e2, num
        _, e2, num, sep = find(s, "^([%d.eE+-]+)%s*([,}]?)", i)
        v = tonumber(num)
        if not v then fail(i, "bad number") end
        i, e3 = e2 + 1, e2
      else
        v, i = parse_value(s, i)
      end
      obj[k] = v
    else
      local done
      done, i = object_rest(s, i, obj)
      if done then return done, i end
    end
    if not sep or sep == "" then
      _, e3, sep = find(s, "^%s*([,}])", i)
    end
    if sep == "}" then return obj, e3 + 1 end
    if not sep then
      i = skip(s, i)
      if not i then error(EOF, 0) end
      fail(i, "expected ',' or '}'")
    end
    i = e3 + 1
  end
end

local function parse_array(s, i) -- i just past "["
  local arr, n = {}, 0
  i = skip(s, i)
  if not i then error(EOF, 0) end
  if byte(s, i) == 93 then return arr, i + 1 end
  while true do
    local v
    v, i = parse_value(s, i)
    n = n + 1
    arr[n] = v
    i = skip(s, i)
    if not i then error(EOF, 0) end
    local c = byte(s, i)
    if c == 44 then
      i = skip(s, i + 1)
      if not i then error(EOF, 0) end
    elseif c == 93 then
      return arr, i + 1
    else
      fail(i, "expected ',' or ']'")
    end
  end
end

local LITERALS = { [116] = { "true", true }, [102] = { "false", false }, [110] = { "null", nil } }

-- s, i at the value's first byte: the value and the position after it.
function parse_value(s, i)
  local c = byte(s, i)
  if c == 34 then return parse_string(s, i + 1) end
  if c == 123 then return parse_object(s, i + 1) end
  if c == 91 then return parse_array(s, i + 1) end
  if c == 45 or (c and c >= 48 and c <= 57) then
    local j = find(s, "[^%d.eE+-]", i + 1) or #s + 1
    local v = tonumber(sub(s, i, j - 1))
    if not v then fail(i, "bad number") end
    return v, j
  end
  local lit = c and LITERALS[c]
  if lit then
    local word = lit[1]
    if sub(s, i, i + #word - 1) == word then return lit[2], i + #word end
    if i + #word - 1 > #s then error(EOF, 0) end
  end
  if not c then error(EOF, 0) end
  fail(i, "unexpected character")
end

-- Decodes the whole text as one JSON value (null decodes to nil).
function M.decode(s)
  local i = skip(s, 1)
  if not i then error("JSON: empty text", 0) end
  local ok, v, j = pcall(parse_value, s, i)
  if not ok then error(tostring(v), 0) end
  if skip(s, j) then fail(skip(s, j), "trailing text") end
  return v
end

-- Streams the array whose "[" precedes i: calls fn(event) per element.
-- Returns the position after "]", or nil when the text ends first.
local function stream_array(s, i, fn)
  i = skip(s, i)
  if not i then return nil end
  if byte(s, i) == 93 then return i + 1 end
  while true do
    local ok, v, j = pcall(parse_value, s, i)
    if not ok then
      if v == EOF then return nil end -- a truncated last event
      error(v, 0)
    end
    fn(v)
    i = skip(s, j)
    if not i then return nil end
    local c = byte(s, i)
    if c == 44 then
      i = skip(s, i + 1)
      if not i then return nil end -- "...},"
      if byte(s, i) == 93 then return i + 1 end -- "...,]"
    elseif c == 93 then
      return i + 1
    else
      fail(i, "expected ',' or ']' between events")
    end
  end
end

-- Calls fn(event) for every trace event in text, in file order. Returns a
-- table of the object form's other top-level fields (otherData and such)
-- and whether the text was truncated.
function M.each_event(s, fn)
  local i = skip(s, 1)
  if not i then error("JSON: empty trace file", 0) end
  local c = byte(s, i)
  if c == 91 then
    local j = stream_array(s, i + 1, fn)
    if j and skip(s, j) then fail(skip(s, j), "trailing text") end
    return {}, j == nil
  elseif c ~= 123 then
    fail(i, "a trace is a JSON object or array")
  end
  local top, found = {}, false
  i = skip(s, i + 1)
  while i and byte(s, i) ~= 125 do
    if byte(s, i) ~= 34 then fail(i, "expected a key") end
    local ok, k, j = pcall(parse_string, s, i + 1)
    if not ok then break end
    j = skip(s, j)
    if not j or byte(s, j) ~= 58 then
      if not j then break end
      fail(j, "expected ':'")
    end
    j = skip(s, j + 1)
    if not j then break end
    if k == "traceEvents" and byte(s, j) == 91 then
      found = true
      j = stream_array(s, j + 1, fn)
      if not j then return top, true end
    else
      local v
      ok, v, j = pcall(parse_value, s, j)
      if not ok then
        if v == EOF then break end
        error(v, 0)
      end
      top[k] = v
    end
    i = skip(s, j)
    if i and byte(s, i) == 44 then i = skip(s, i + 1) end
  end
  if not found then error("JSON: no traceEvents array in the trace object", 0) end
  return top, i == nil
end

return M
