-- Send values between processes with a Pipe (SuperFastPython: "example of
-- using a pipe between processes"): a sender process, a receiver process,
-- and a nil to say "done".
local mp = require "braid.multiprocessing"

local function sender(connection)
    print("Sender: Running")
    for i = 1, 5 do
        local value = i / 10
        connection:send(value)
        print(("> sender sent %.1f"):format(value))
    end
    connection:send(nil)
    print("Sender: Done")
end

local function receiver(connection)
    print("Receiver: Running")
    while true do
        local item = connection:recv()
        print(("> receiver got %s"):format(tostring(item)))
        if item == nil then break end
    end
    print("Receiver: Done")
end

local conn1, conn2 = mp.Pipe()
local s = mp.Process{target = sender, args = {conn2}}
s:start()
local r = mp.Process{target = receiver, args = {conn1}}
r:start()
s:join()
r:join()
print("exitcodes", s.exitcode, r.exitcode)
