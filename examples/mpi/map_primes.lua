-- examples/futures/map_primes.lua on MPI: the one changed line makes the
-- executor an MPIPoolExecutor. Run: mpiexec -n 3 braid -m braid.mpi map_primes.lua
local futures = require "braid.futures"

local PRIMES = { 112272535095293, 112582705942171, 112272535095293, 115280095190773,
  115797848077099, 1099726899285419 }

local function is_prime(n)
  if n < 2 then return false end
  if n == 2 then return true end
  if n % 2 == 0 then return false end
  local sqrt_n = math.floor(math.sqrt(n))
  for i = 3, sqrt_n, 2 do
    if n % i == 0 then return false end
  end
  return true
end

local ex <close> = futures.MPIPoolExecutor{}
local i = 0
for prime in ex:map(is_prime, PRIMES) do
  i = i + 1
  print(("%d is prime: %s"):format(PRIMES[i], tostring(prime)))
end
