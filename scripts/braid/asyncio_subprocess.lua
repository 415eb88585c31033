-- braid.asyncio subprocesses, Lua half: create_subprocess_exec/_shell and
-- Process (communicate, wait, returncode, pid, signals), on the process
-- boxes of bindings/lsubprocess.c; pipes are StreamReader/StreamWriter.
return function(M, C, streams)
  local braid = require "braid"
  local Error = braid.Error
  local setmetatable, rawget, type, select, error, pcall, pairs, tostring =
    setmetatable, rawget, type, select, error, pcall, pairs, tostring
  local this_task, get_loop = M._this_task, M._get_loop

  local Process = {__name = "braid.asyncio.Process"}
  function Process.__index(t, k)
    if k == "returncode" then return C._proc_returncode(rawget(t, "_p")) end
    return Process[k]
  end

  local function env_list(env)
    if env == nil then return nil end
    if type(env) ~= "table" then
      error(("bad option 'env' (table expected, got %s)"):format(type(env)), 4)
    end
    local list = {}
    for k, v in pairs(env) do list[#list + 1] = tostring(k) .. "=" .. tostring(v) end
    return list
  end

  local function spawn(file, args, opts, what)
    if opts == nil then opts = {} end
    if type(opts) ~= "table" then
      error(("bad argument to '%s' (options table expected, got %s)"):format(what, type(opts)), 3)
    end
    local loop = get_loop()
    local p, i, o, e = C._spawn(loop.c, file, args, opts.cwd, env_list(opts.env), opts.stdin,
      opts.stdout, opts.stderr)
    local proc = setmetatable({_p = p, pid = C._proc_pid(p), args = args}, Process)
    if i then
      local _, w = streams(i)
      proc.stdin = w
    end
    if o then proc.stdout = (streams(o, opts.limit)) end
    if e then proc.stderr = (streams(e, opts.limit)) end
    return proc
  end

  -- create_subprocess_exec(prog, arg..., [opts])
  function M.create_subprocess_exec(prog, ...)
    if type(prog) ~= "string" then
      error(("bad argument #1 to 'create_subprocess_exec' (string expected, got %s)"):format(
        type(prog)), 2)
    end
    local n = select("#", ...)
    local args = {prog, ...}
    local opts
    if n > 0 and type(args[n + 1]) == "table" then
      opts = args[n + 1]
      args[n + 1] = nil
      n = n - 1
    end
    for i = 2, n + 1 do
      local a = args[i]
      if type(a) ~= "string" and type(a) ~= "number" then
        error(("bad argument #%d to 'create_subprocess_exec' (string expected, got %s)"):format(
          i, type(a)), 2)
      end
      args[i] = tostring(a)
    end
    return spawn(prog, args, opts, "create_subprocess_exec")
  end

  function M.create_subprocess_shell(cmd, opts)
    if type(cmd) ~= "string" then
      error(("bad argument #1 to 'create_subprocess_shell' (string expected, got %s)"):format(
        type(cmd)), 2)
    end
    return spawn("/bin/sh", {"/bin/sh", "-c", cmd}, opts, "create_subprocess_shell")
  end

  -- Waits for the child to exit; returns its return code.
  function Process:wait()
    return C._proc_wait(self._p)
  end

  local function read_all(reader)
    local data = reader:read()
    C._close(reader._s)
    return data
  end

  -- Writes input (if any) to stdin and closes it, reads stdout and stderr to
  -- EOF at the same time, waits for the exit: returns stdout, stderr (nil
  -- for a stream that is not a pipe).
  function Process:communicate(input)
    this_task("communicate")
    if input ~= nil and type(input) ~= "string" then
      error(("bad argument #1 to 'communicate' (string expected, got %s)"):format(type(input)), 2)
    end
    local out_t = self.stdout and M.create_task(read_all, self.stdout)
    local err_t = self.stderr and M.create_task(read_all, self.stderr)
    local stdin = self.stdin
    if stdin then
      -- a child that exits without reading its input is not an error (as Python)
      local ok, err = pcall(function()
        if input then
          stdin:write(input)
          stdin:drain()
        end
      end)
      stdin:close()
      if not ok and not Error.is(err, "ConnectionError") then error(err, 0) end
    end
    local out = out_t and M.await(out_t)
    local err = err_t and M.await(err_t)
    self:wait()
    return out, err
  end

  function Process:send_signal(sig) C._proc_kill(self._p, sig) end
  function Process:terminate() C._proc_kill(self._p, C.SIGTERM) end
  function Process:kill() C._proc_kill(self._p, C.SIGKILL) end
  function Process:__tostring()
    return ("<Process %d>"):format(self.pid)
  end

  M.Process = Process
end
