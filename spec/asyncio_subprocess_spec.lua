-- braid.asyncio subprocesses, modelled on CPython's
-- test_asyncio/test_subprocess.py. Every test ends with the loop holding no
-- libuv handle besides its own.
local asyncio = require "braid.asyncio"
local PIPE, DEVNULL, STDOUT = asyncio.PIPE, asyncio.DEVNULL, asyncio.STDOUT

local support = require "spec.support.asyncio"
local raises = support.raises

local function run(main) return support.run_no_handles(main, 0.01) end

describe("asyncio subprocesses", function()
  after_each(support.no_loops_left)

  it("communicate feeds stdin and collects stdout; returncode and pid", function()
    run(function()
      local p = asyncio.create_subprocess_exec("cat", {stdin = PIPE, stdout = PIPE})
      assert.is_true(p.pid > 0)
      assert.is_nil(p.returncode)
      local out, err = p:communicate("hello\nworld\n")
      assert.are.equal("hello\nworld\n", out)
      assert.is_nil(err)
      assert.are.equal(0, p.returncode)
      assert.are.equal(0, p:wait())
    end)
  end)

  it("a shell command: stdout, stderr, exit status", function()
    run(function()
      local p = asyncio.create_subprocess_shell("echo out; echo err >&2; exit 3",
        {stdout = PIPE, stderr = PIPE})
      local out, err = p:communicate()
      assert.are.equal("out\n", out)
      assert.are.equal("err\n", err)
      assert.are.equal(3, p.returncode)
      p = asyncio.create_subprocess_shell("echo a; echo b >&2", {stdout = PIPE, stderr = STDOUT})
      out, err = p:communicate()
      assert.are.equal("a\nb\n", out)
      assert.is_nil(err)
      p = asyncio.create_subprocess_shell("cat; echo done", {stdin = DEVNULL, stdout = PIPE,
        stderr = DEVNULL})
      assert.are.equal("done\n", (p:communicate()))
    end)
  end)

  it("moves 10 MB each way through communicate without deadlock", function()
    run(function()
      local data = string.rep("0123456789abcdef", 10 * 1024 * 1024 // 16)
      local p = asyncio.create_subprocess_exec("cat", {stdin = PIPE, stdout = PIPE})
      local out = p:communicate(data)
      assert.are.equal(#data, #out)
      assert.is_true(out == data)
      p = asyncio.create_subprocess_exec("head", "-c", 10000000, "/dev/zero", {stdout = PIPE})
      assert.are.equal(10000000, #p:communicate())
    end)
  end)

  it("streams output line by line while the child runs", function()
    run(function()
      local p = asyncio.create_subprocess_shell("for i in 1 2 3; do echo line $i; done",
        {stdout = PIPE})
      local lines = {}
      while true do
        local l = p.stdout:readline()
        if l == "" then break end
        lines[#lines + 1] = l
      end
      assert.are.same({"line 1\n", "line 2\n", "line 3\n"}, lines)
      assert.are.equal(0, p:wait())
      p = nil
    end)
  end)

  it("terminate, kill and send_signal give negative return codes", function()
    run(function()
      local p = asyncio.create_subprocess_exec("sleep", 30)
      p:terminate()
      assert.are.equal(-15, p:wait())
      p = asyncio.create_subprocess_exec("sleep", 30)
      p:kill()
      assert.are.equal(-9, p:wait())
      p = asyncio.create_subprocess_exec("sleep", 30)
      p:send_signal("INT")
      assert.are.equal(-2, p:wait())
      p:kill() -- after the exit: a no-op
      assert.are.equal(-2, p.returncode)
    end)
  end)

  it("several tasks wait at once; a cancelled or timed-out wait leaves the process usable", function()
    run(function()
      local p = asyncio.create_subprocess_exec("sleep", 0.2)
      local w1 = asyncio.create_task(function() return p:wait() end)
      local w2 = asyncio.create_task(function() return p:wait() end)
      raises("Timeout", asyncio.wait_for, function() return p:wait() end, 0.01)
      local w3 = asyncio.create_task(function() return p:wait() end)
      asyncio.sleep(0.01)
      w3:cancel()
      raises("Cancelled", asyncio.await, w3)
      local res = asyncio.gather(w1, w2)
      assert.are.equal(0, res[1])
      assert.are.equal(0, res[2])
      assert.are.equal(0, p.returncode)
    end)
  end)

  it("a program that cannot be started raises an OSError naming it", function()
    run(function()
      local err = raises("OSError", asyncio.create_subprocess_exec, "no-such-program-braid")
      assert.are.equal("ENOENT", err.errno)
      assert.matches("no%-such%-program%-braid", err.message)
      err = raises("OSError", asyncio.create_subprocess_exec, "true", {cwd = "/no/such/dir"})
      assert.are.equal("ENOENT", err.errno)
    end)
  end)

  it("env and cwd options; a child that ignores its input", function()
    run(function()
      local p = asyncio.create_subprocess_exec("/bin/sh", "-c", 'echo "$BRAID_X $(pwd)"',
        {stdout = PIPE, env = {BRAID_X = "yes", PATH = os.getenv("PATH")}, cwd = "/"})
      assert.are.equal("yes /\n", (p:communicate()))
      p = asyncio.create_subprocess_exec("true", {stdin = PIPE})
      p:communicate(string.rep("x", 4 * 1024 * 1024))
      assert.are.equal(0, p.returncode)
    end)
  end)

  it("bad arguments raise clear errors", function()
    run(function()
      assert.has_error(function() asyncio.create_subprocess_exec(42) end)
      assert.has_error(function() asyncio.create_subprocess_exec("true", {}, "x") end)
      assert.has_error(function() asyncio.create_subprocess_exec("true", {stdout = 7}) end)
      assert.has_error(function() asyncio.create_subprocess_exec("true", {stdout = STDOUT}) end)
      assert.has_error(function() asyncio.create_subprocess_shell(nil) end)
      local p = asyncio.create_subprocess_exec("true")
      assert.has_error(function() p:communicate(42) end)
      assert.has_error(function() p:send_signal("NOPE") end)
      p:wait()
    end)
  end)
end)
