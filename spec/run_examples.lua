-- Runs every examples/**/*.lua with the braid executable and checks it
-- exits 0 and that each Lua pattern in its sibling .expected file matches
-- some line of its output. usage: braid spec/run_examples.lua BRAID_EXE
local exe = assert(arg[1], "usage: run_examples.lua BRAID_EXE")
local list = io.popen("find examples -name '*.lua' -not -path '*/embed/*' -not -path '*/mpi/*' | sort")
local passed, failed = 0, 0
for path in list:lines() do
  local p = io.popen(("cd %q && %q %q 2>&1 </dev/null; echo \"exit:$?\"")
    :format(path:match("^(.*)/") or ".", exe:sub(1, 1) == "/" and exe or os.getenv("PWD") .. "/" .. exe,
      path:match("[^/]+$")))
  local out = p:read("a")
  p:close()
  local ok, why = out:match("exit:0\n$") ~= nil, "exit status: " .. (out:match("exit:(%d+)\n$") or "?")
  local exp = io.open((path:gsub("%.lua$", ".expected")))
  if ok and exp then
    for pat in exp:lines() do
      if pat ~= "" and not out:find(pat) then
        ok, why = false, "no output matches: " .. pat
        break
      end
    end
  end
  if exp then exp:close() end
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    print(("FAIL %s (%s)\n%s"):format(path, why, out))
  end
end
print(("examples: %d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and passed > 0)
