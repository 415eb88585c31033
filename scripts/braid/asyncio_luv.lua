-- `require "luv"` on the running asyncio loop, Lua half (C half:
-- bindings/lluv.c). A package searcher finds luv's C module and opens it on
-- the running loop's uv loop; asyncio.run binds a luv opened before it to
-- its loop for the run and gives luv back its own loop afterwards. Returns
-- enter(loop) and leave(), which asyncio.run and the REPL call.
return function(M, C, running)
  local Error = require("braid").Error
  local searchpath, cpath_of = package.searchpath, function() return package.cpath end

  local st = {open = false} -- open: luv's API is loaded and luv bound by us
  local own                 -- luv's loop outside asyncio.run (light userdata)
  local keep                -- the fallback loop's userdata, kept alive
  local bound = false       -- luv is on a running asyncio loop now

  -- luv's run and walk must not run on the asyncio loop: uv_run cannot
  -- nest, and walk would visit braid's handles
  local function adopt(mod)
    if type(mod) ~= "table" or rawget(mod, "__braid") then return end
    local run, walk = mod.run, mod.walk
    mod.run = function(...)
      if bound then
        error(Error.new("RuntimeError", "uv.run() inside asyncio.run: the asyncio loop already "
          .. "runs luv's handles (await something instead)"), 2)
      end
      return run(...)
    end
    mod.walk = function(...)
      if bound then
        error(Error.new("RuntimeError", "uv.walk() inside asyncio.run would see braid's own handles"), 2)
      end
      return walk(...)
    end
    rawset(mod, "__braid", true)
  end

  local function searcher(name)
    if name ~= "luv" then return nil end
    local path = searchpath(name, cpath_of())
    if not path then return nil end -- the C searcher says where it looked
    return function(_, p)
      C._luv_load(p)
      local loop = running()
      local mod, uvloop = C._luv_open(loop and loop.c)
      st.open = true
      if loop then bound = true else own = uvloop end
      adopt(mod)
      return mod
    end, path
  end
  table.insert(package.searchers, 2, searcher)

  local function enter(loop)
    if not st.open then -- luv opened before braid.asyncio was loaded
      local mod = package.loaded.luv
      if type(mod) ~= "table" then return end
      local path = searchpath("luv", cpath_of())
      if not path or not pcall(C._luv_load, path) then return end
      st.open = true
      adopt(mod)
    end
    local prev = C._luv_bind(loop.c)
    if own == nil and not bound then own = prev end
    bound = true
  end

  local function leave()
    if not st.open or not bound then return end
    if own == nil then keep, own = C._luv_fallback() end
    C._luv_bind(own)
    bound = false
  end

  return enter, leave
end
