/* Raw-C floor for mpi/latency: rank 0 sends a 40-byte message to rank 1,
 * which answers with 12 bytes (the sizes of an encoded submit(inc, i) and
 * its result), N times; prints round trips per second.
 * mpicc -O2 pingpong.c -o /tmp/pingpong && mpiexec -n 2 /tmp/pingpong */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    enum { N = 20000 };
    char buf[64] = {0};
    int rank;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (int round = 0; round < 2; round++) { /* warm-up, then measured */
        double t0 = MPI_Wtime();
        for (int i = 0; i < N; i++) {
            if (rank == 0) {
                MPI_Send(buf, 40, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
                MPI_Recv(buf, 64, MPI_BYTE, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else {
                MPI_Recv(buf, 64, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(buf, 12, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
            }
        }
        if (rank == 0 && round == 1)
            printf("RESULT mpi_pingpong %.1f\n", N / (MPI_Wtime() - t0));
    }
    MPI_Finalize();
    return 0;
}
