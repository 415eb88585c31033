-- queue_1to1 in braid: 1 producer(s) -> 1 consumer(s) through one
-- Queue(1024). usage: braid 1to1.lua [N]
dofile(((arg and arg[0] or ""):match("^(.*)/") or ".") .. "/lib/flow.lua")(1, "queue_1to1")
