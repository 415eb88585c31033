-- The braid executable's command line, run as a child process: options, the
-- arg table, script arguments, stdin, exit statuses and tracebacks.
-- The executable is $BRAID_EXE (default build/braid).

local files = require "spec.support.files"
local EXE, quote, tmpname = files.EXE, files.quote, files.tmpname
local writefile, readfile = files.writefile, files.readfile

-- Writes a script into a temp file and returns its path.
local function script(text)
  return writefile(tmpname(), text)
end

-- Runs the executable with args (a list), opts.stdin as its standard input
-- (else /dev/null) and opts.env (a table of NAME=value, false to unset).
-- Returns stdout, stderr, exit status.
local function run(args, opts)
  opts = opts or {}
  local out, err = tmpname(), tmpname()
  local cmd = { "env", "-u", "LUA_INIT", "-u", "LUA_INIT_5_4" }
  for k, v in pairs(opts.env or {}) do -- unsets first: env stops at NAME=value
    if v == false then table.insert(cmd, 2, "-u " .. k) end
  end
  for k, v in pairs(opts.env or {}) do
    if v ~= false then cmd[#cmd + 1] = quote(k .. "=" .. v) end
  end
  cmd[#cmd + 1] = quote(EXE)
  for _, a in ipairs(args) do cmd[#cmd + 1] = quote(a) end
  local input = opts.stdin and writefile(tmpname(), opts.stdin) or "/dev/null"
  cmd[#cmd + 1] = "<" .. quote(input) .. " >" .. quote(out) .. " 2>" .. quote(err)
  local ok, how, code = os.execute(table.concat(cmd, " "))
  assert(how == "exit", "killed by signal " .. tostring(code))
  return readfile(out), readfile(err), code
end

describe("braid executable", function()
  after_each(files.remove_tmpfiles)

  describe("-v", function()
    it("prints 'braid <version> (Lua 5.4)' and exits 0", function()
      local out, err, code = run { "-v" }
      assert.equal(0, code)
      assert.equal("", err)
      local version = require("braid").version
      assert.equal("braid " .. version .. " (Lua 5.4)\n", out)
    end)

    it("runs -e after printing the banner", function()
      local out, _, code = run { "-v", "-e", "print('after')" }
      assert.equal(0, code)
      assert.matches("^braid %S+ %(Lua 5%.4%)\nafter\n$", out)
    end)
  end)

  describe("-e", function()
    it("runs statements in order, attached or separate", function()
      local out, err, code = run { "-e", "x = 20", "-ex = x + 1", "-e", "print(x * 2)" }
      assert.equal(0, code)
      assert.equal("", err)
      assert.equal("42\n", out)
    end)

    it("has the braid modules requirable", function()
      local out, _, code = run { "-e", "print(type(require 'braid'), type(require 'braid.queue'))" }
      assert.equal(0, code)
      assert.equal("table\ttable\n", out)
    end)

    it("errors: status 1, message with traceback on stderr", function()
      local out, err, code = run { "-e", "error('boom')" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("^%S*braid: %(command line%):1: boom\nstack traceback:\n", err)
      assert.matches("in main chunk", err)
    end)

    it("a syntax error stops before later options", function()
      local out, err, code = run { "-e", "x = = 1", "-e", "print('not reached')" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("%(command line%):1:", err)
    end)

    it("needs an argument", function()
      local _, err, code = run { "-e" }
      assert.equal(1, code)
      assert.matches("'%-e' needs argument", err)
      assert.matches("usage:", err)
    end)
  end)

  describe("-m", function()
    local dir
    before_each(function()
      dir = tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. quote(dir)))
      writefile(dir .. "/runner.lua", "local M = {}\n"
        .. "function M.main(...) print('main', arg[0], select('#', ...), ...) end\nreturn M\n")
      writefile(dir .. "/nomain.lua", "return { x = 1 }\n")
    end)
    after_each(function()
      os.execute("rm -rf " .. quote(dir))
    end)
    local function env()
      return { LUA_PATH = dir .. "/?.lua;;", LUA_PATH_5_4 = false }
    end

    it("calls the module's main with the arguments after it", function()
      local out, _, code = run({ "-e", "x = 1", "-m", "runner", "a", "-e", "b" }, { env = env() })
      assert.equal(0, code)
      assert.equal("main\trunner\t3\ta\t-e\tb\n", out)
      out, _, code = run({ "-mrunner" }, { env = env() })
      assert.equal(0, code)
      assert.equal("main\trunner\t0\n", out)
    end)

    it("fails clearly without a main, a module or an argument", function()
      local _, err, code = run({ "-m", "nomain" }, { env = env() })
      assert.equal(1, code)
      assert.matches("module 'nomain' has no main function", err)
      _, err, code = run({ "-m", "no_such_module_here" }, { env = env() })
      assert.equal(1, code)
      assert.matches("module 'no_such_module_here' not found", err)
      _, err, code = run { "-m" }
      assert.equal(1, code)
      assert.matches("'%-m' needs argument", err)
    end)
  end)

  describe("-l", function()
    local dir
    before_each(function()
      dir = tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. quote(dir)))
      writefile(dir .. "/mymod.lua", "return { x = 'from mymod' }\n")
      writefile(dir .. "/mymod-v2.lua", "return { x = 'from v2' }\n")
    end)
    after_each(function()
      os.execute("rm -rf " .. quote(dir))
    end)

    local function env()
      return { LUA_PATH = dir .. "/?.lua;;", LUA_PATH_5_4 = false }
    end

    it("requires a module into the global of the same name", function()
      local out, _, code = run({ "-l", "mymod", "-e", "print(mymod.x)" }, { env = env() })
      assert.equal(0, code)
      assert.equal("from mymod\n", out)
    end)

    it("g=mod names the global", function()
      local out, _, code = run({ "-l", "g=mymod", "-e", "print(g.x, mymod)" }, { env = env() })
      assert.equal(0, code)
      assert.equal("from mymod\tnil\n", out)
    end)

    it("drops a -suffix from the global name", function()
      local out, _, code = run({ "-lmymod-v2", "-e", "print(mymod.x)" }, { env = env() })
      assert.equal(0, code)
      assert.equal("from v2\n", out)
    end)

    it("loads braid modules", function()
      local out, _, code = run { "-l", "braid", "-e", "print(type(braid.version))" }
      assert.equal(0, code)
      assert.equal("string\n", out)
    end)

    it("a missing module fails with status 1", function()
      local _, err, code = run { "-l", "no_such_module_xyz", "-e", "print('not reached')" }
      assert.equal(1, code)
      assert.matches("module 'no_such_module_xyz' not found", err)
    end)
  end)

  describe("-E, -W and LUA_INIT", function()
    it("runs LUA_INIT before -e and the script", function()
      local out, _, code = run({ "-e", "print(init)" }, { env = { LUA_INIT = "init = 'yes'" } })
      assert.equal(0, code)
      assert.equal("yes\n", out)
    end)

    it("LUA_INIT_5_4 wins over LUA_INIT; @file runs a file", function()
      local f = script("init = 'file'\n")
      local out = run({ "-e", "print(init)" }, { env = { LUA_INIT = "init = 'plain'", LUA_INIT_5_4 = "@" .. f } })
      assert.equal("file\n", out)
    end)

    it("an error in LUA_INIT stops with status 1", function()
      local out, err, code = run({ "-e", "print('not reached')" }, { env = { LUA_INIT = "error('bad init')" } })
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("bad init", err)
    end)

    it("-E ignores LUA_INIT and LUA_PATH", function()
      local out, _, code = run({ "-E", "-e", "print(init, package.path:find('/nowhere', 1, true))" },
        { env = { LUA_INIT = "init = 'yes'", LUA_PATH = "/nowhere/?.lua" } })
      assert.equal(0, code)
      assert.equal("nil\tnil\n", out)
    end)

    it("-W turns warnings on", function()
      local _, err, code = run { "-W", "-e", "warn('careful')" }
      assert.equal(0, code)
      assert.matches("Lua warning: careful", err)
      _, err = run { "-e", "warn('careful')" }
      assert.equal("", err)
    end)

    it("an unknown option prints usage and fails", function()
      local out, err, code = run { "-x" }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("unrecognized option '%-x'", err)
    end)
  end)

  describe("--help", function()
    it("lists every option on stdout and exits 0", function()
      for _, flag in ipairs { "--help", "-h" } do
        local out, err, code = run { flag }
        assert.equal(0, code)
        assert.equal("", err)
        for _, opt in ipairs { "-e stat", "-i", "-l mod", "-l g=mod", "-v", "-E", "-W", "-h, --help", "--  ", "-   " } do
          assert.truthy(out:find("\n  " .. opt, 1, true), opt)
        end
      end
    end)

    it("is a script argument after the script", function()
      local out, _, code = run { script("print(...)"), "--help" }
      assert.equal(0, code)
      assert.equal("--help\n", out)
    end)
  end)

  describe("scripts", function()
    it("gets its arguments as ... and in arg", function()
      local s = script("print(select('#', ...), ...)\nprint(#arg, arg[1], arg[2], arg[3])\n")
      local out, err, code = run { s, "a", "b c", "" }
      assert.equal(0, code)
      assert.equal("", err)
      assert.equal("3\ta\tb c\t\n3\ta\tb c\t\n", out)
    end)

    it("arg[0] is the script, options and the interpreter at negative indices", function()
      local s = script("for i = -4, 1 do io.write(tostring(arg[i]), '|') end print()")
      local out, _, code = run { "-e", "x=1", s, "one" }
      assert.equal(0, code)
      assert.equal("nil|" .. EXE .. "|-e|x=1|" .. s .. "|one|\n", out)
    end)

    it("without a script, arg[0] is the interpreter and options follow (as lua)", function()
      local out = run { "-e", "print(arg[0], arg[-1], #arg, arg[1])" }
      assert.equal(EXE .. "\tnil\t2\t-e\n", out)
    end)

    it("-- stops option handling", function()
      local s = script("print(...)")
      local out, _, code = run { "--", s, "-e", "--" }
      assert.equal(0, code)
      assert.equal("-e\t--\n", out)
    end)

    it("skips a #! first line", function()
      local s = script("#!/usr/bin/env braid\nprint('shebang ok', select('#', ...))\n")
      local out, err, code = run { s, "x" }
      assert.equal(0, code)
      assert.equal("", err)
      assert.equal("shebang ok\t1\n", out)
    end)

    it("a runtime error exits 1 with a traceback naming the script", function()
      local s = script("local function f()\n  error('deep')\nend\nf()\n")
      local out, err, code = run { s }
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches(":2: deep\nstack traceback:", err)
      assert.matches("in local 'f'", err)
      assert.matches("in main chunk", err)
    end)

    it("a syntax error exits 1", function()
      local s = script("print('x'\n")
      local _, err, code = run { s }
      assert.equal(1, code)
      assert.matches("expected", err)
    end)

    it("a missing script exits 1", function()
      local _, err, code = run { "/nonexistent/script.lua" }
      assert.equal(1, code)
      assert.matches("cannot open /nonexistent/script.lua", err)
    end)

    it("reports error objects: __tostring, braid.Error, other values", function()
      local _, err, code = run { "-e", "error(setmetatable({}, {__tostring = function() return 'custom!' end}))" }
      assert.equal(1, code)
      assert.matches("custom!\nstack traceback:", err)
      _, err, code = run { "-e", "require('braid').decode('\\255 not encoded')" }
      assert.equal(1, code)
      assert.matches("ValueError", err)
      assert.matches("stack traceback:", err)
      _, err, code = run { "-e", "error({})" }
      assert.equal(1, code)
      assert.matches("%(error object is a table value%)", err)
    end)

    it("runs -i's REPL after the script on a non-tty stdin", function()
      local s = script("greeting = 'hello'\n")
      local out, _, code = run({ "-i", s }, { stdin = "greeting .. '!'\nfunction f()\nreturn 7 end\nf()\n" })
      assert.equal(0, code)
      assert.matches("^braid %S+ %(Lua 5%.4%)\n", out)
      assert.matches("hello!\n", out)
      assert.matches(">> ", out)
      assert.matches("7\n", out)
    end)
  end)

  describe("stdin", function()
    it("'-' runs stdin with the script arguments", function()
      local out, _, code = run({ "-", "a", "b" }, { stdin = "print(arg[0], ...)" })
      assert.equal(0, code)
      assert.equal("-\ta\tb\n", out)
    end)

    it("no script and stdin not a terminal: runs stdin", function()
      local out, _, code = run({}, { stdin = "#!shebang too\nprint('from stdin')" })
      assert.equal(0, code)
      assert.equal("from stdin\n", out)
    end)

    it("an error in stdin exits 1", function()
      local _, err, code = run({}, { stdin = "error('in stdin')" })
      assert.equal(1, code)
      assert.matches("stdin:1: in stdin\nstack traceback:", err)
    end)
  end)

  describe("exit status", function()
    it("os.exit(n) exits with n", function()
      local _, _, code = run { "-e", "os.exit(3)" }
      assert.equal(3, code)
    end)

    it("os.exit(true/false) and os.exit(n, true)", function()
      assert.equal(0, select(3, run { "-e", "os.exit(true)" }))
      assert.equal(1, select(3, run { "-e", "os.exit(false)" }))
      assert.equal(7, select(3, run { "-e", "os.exit(7, true)" }))
    end)

    it("--worker without a parent's call fails cleanly", function()
      local _, err, code = run { "--worker" }
      assert.equal(2, code)
      assert.matches("no call from the parent", err)
    end)
  end)

  describe("Ctrl-C (SIGINT)", function()
    -- the script asks a background shell to signal it, then blocks forever
    local function interrupted_while(blocking)
      return run { "-e", [[
        os.execute("(sleep 0.2; kill -INT $PPID) &")
      ]] .. blocking }
    end

    for what, call in pairs {
      ["a queue get"] = "require('braid.queue').Queue():get()",
      ["braid.sleep"] = "require('braid').sleep(60)",
      ["an event wait"] = "require('braid.threading').Event():wait()",
    } do
      it("interrupts " .. what, function()
        local t0 = os.time()
        local _, err, code = interrupted_while(call)
        assert.equal(1, code)
        assert.matches("interrupted!", err)
        assert.is_true(os.time() - t0 < 30)
      end)
    end
  end)

  describe("non-daemon threads at exit", function()
    local has_threading = select(3, run { "-e", "require 'braid.threading'" }) == 0
    local start_thread = [[
      local threading = require "braid.threading"
      local t = threading.Thread{target = function()
        require("braid").sleep(0.2) -- outlive the main chunk (not synchronisation)
        print("thread done")
      end}
      t:start()
      print("main done")
    ]]

    local function check(tail, expect_code)
      if not has_threading then
        pending("braid.threading not built yet")
        return
      end
      local out, err, code = run { script(start_thread .. tail) }
      assert.equal(expect_code, code, err)
      assert.equal("main done\nthread done\n", out)
      return err
    end

    it("are waited for after the main chunk ends", function()
      check("", 0)
    end)

    it("are waited for after the main chunk fails; status stays 1", function()
      local err = check("error('main failed')", 1)
      if err then assert.matches("main failed\nstack traceback:", err) end
    end)

    it("are waited for by os.exit", function()
      check("os.exit(4)", 4)
    end)
  end)
end)
