-- queue_4to4 in braid: 4 producer(s) -> 4 consumer(s) through one
-- Queue(1024). usage: braid 4to4.lua [N]
dofile(((arg and arg[0] or ""):match("^(.*)/") or ".") .. "/lib/flow.lua")(4, "queue_4to4")
