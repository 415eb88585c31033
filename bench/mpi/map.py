# mpi/map with mpi4py.futures: MPIPoolExecutor.map of a trivial function over
# 20,000 items on 2 worker ranks, chunksize 1 and 100 (items per second).
# Run as `python3 map.py`: it starts itself under
# `mpiexec -n 3 /usr/bin/python3 -m mpi4py.futures` (Debian's python3-mpi4py).
import os
import subprocess
import sys
import time

N = 20000


def inc(x):
    return x + 1


def main():
    from mpi4py.futures import MPIPoolExecutor

    with MPIPoolExecutor(max_workers=2) as ex:
        for cs in (1, 100):
            list(ex.map(inc, [1, 2, 3, 4]))  # warm up the ranks
            t0 = time.perf_counter()
            out = list(ex.map(inc, range(1, N + 1), chunksize=cs))
            dt = time.perf_counter() - t0
            assert len(out) == N and out[-1] == N + 1
            print("RESULT mpi_map_cs%d %.1f" % (cs, N / dt), flush=True)


if __name__ == "__main__":
    if "OMPI_COMM_WORLD_SIZE" not in os.environ:
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="true",
                   OMPI_MCA_btl_vader_single_copy_mechanism="none")
        p = subprocess.run(["mpiexec", "-n", "3", "/usr/bin/python3", "-m", "mpi4py.futures",
                            os.path.basename(__file__)], env=env, capture_output=True, text=True)
        sys.stdout.write(p.stdout + p.stderr)
        sys.exit(p.returncode)
    main()
