-- Every public Lua function braid registers is documented in docs/.
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function files(pattern)
  local out = {}
  local p = io.popen("ls " .. pattern .. " 2>/dev/null")
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function public_names()
  local names = {}
  for _, path in ipairs(files("bindings/l*.c")) do
    for name in read(path):gmatch('{"([%a_][%w_]*)",%s*l[%w_]+}') do
      names[name] = path
    end
  end
  for _, path in ipairs(files("scripts/braid/*.lua")) do
    local src = read(path)
    for name in src:gmatch("\nfunction [%w_]+[.:]([%a_][%w_]*)") do names[name] = path end
    for name in src:gmatch("\n[%w_]+%.([%a_][%w_]*)%s*=") do names[name] = path end
  end
  for name in pairs(names) do
    if name:sub(1, 1) == "_" then names[name] = nil end -- private or metamethod
  end
  return names
end

describe("docs", function()
  it("document every registered public name", function()
    local docs = {}
    for _, path in ipairs(files("docs/*.md")) do docs[#docs + 1] = read(path) end
    docs = table.concat(docs, "\n")
    local missing = {}
    for name, where in pairs(public_names()) do
      if not docs:find("%f[%w_]" .. name .. "%f[^%w_]") then
        missing[#missing + 1] = name .. " (" .. where .. ")"
      end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("give every module a guide page", function()
    for _, path in ipairs(files("bindings/l*.c")) do
      local m = read(path):match("int lbraid_open_([%w_]+)%(")
      if m and m ~= "error" then
        assert.is_true(io.open("docs/" .. m .. ".md") ~= nil, "docs/" .. m .. ".md missing")
      end
    end
  end)
end)
