/* The raw-C floor for process start + join: fork + _exit + waitpid, and
 * posix_spawn of a tiny program (/bin/true) + waitpid (issue 9). */
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

static void fork_once(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    int st;
    waitpid(pid, &st, 0);
}

static void spawn_once(void)
{
    char *argv[] = {"true", NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0)
        return;
    int st;
    waitpid(pid, &st, 0);
}

static double rate(void (*once)(void), double secs)
{
    once();
    long n = 0;
    double t0 = now();
    while (now() - t0 < secs) {
        once();
        n++;
    }
    return n / (now() - t0);
}

int main(void)
{
    printf("RESULT spawn_start_join %.1f\n", rate(spawn_once, 1));
    printf("RESULT fork_start_join %.1f\n", rate(fork_once, 1));
    return 0;
}
