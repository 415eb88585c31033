/* The floor for subprocess_true: posix_spawnp of `true` with stdout piped,
 * read to EOF, waitpid, one after the other for about a second, with no
 * event loop at all: reports processes/s. */
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    char *argv[] = {"true", NULL};
    long n = 0;
    double t0 = now(), dt;
    do {
        for (int i = 0; i < 20; i++) {
            int fds[2];
            if (pipe(fds) != 0)
                return 1;
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
            posix_spawn_file_actions_addclose(&fa, fds[0]);
            pid_t pid;
            if (posix_spawnp(&pid, "true", &fa, NULL, argv, environ) != 0)
                return 1;
            posix_spawn_file_actions_destroy(&fa);
            close(fds[1]);
            char buf[256];
            while (read(fds[0], buf, sizeof buf) > 0)
                ;
            close(fds[0]);
            int st;
            waitpid(pid, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return 1;
        }
        n += 20;
        dt = now() - t0;
    } while (dt < 1);
    printf("RESULT subprocess_true %.0f\n", n / dt);
    return 0;
}
