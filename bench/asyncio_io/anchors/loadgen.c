/* A light load generator for workers.lua: NCONN loopback connections, each
 * sending a 64-byte request and waiting for the 64-byte answer, one at a
 * time, for SECS seconds, on one epoll loop in C (so it takes little of
 * the CPU the servers under test need). Prints requests/s, then a line
 * "cpu SECONDS": the CPU time it used (user + system), which on a machine
 * with as many cores as servers is taken from them.
 * usage: loadgen PORT SECS [NCONN] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int port = atoi(argv[1]), nconn = argc > 3 ? atoi(argv[3]) : 50;
    double secs = atof(argv[2]);
    int ep = epoll_create1(0);
    int *got = calloc(nconn, sizeof *got), *fds = calloc(nconn, sizeof *fds);
    char req[64], buf[4096];
    memset(req, 'q', sizeof req);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("connect");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fds[i] = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)fd << 32) | (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        if (write(fd, req, sizeof req) != sizeof req)
            return 1;
    }
    long n = 0;
    double t0 = now(), end = t0 + secs;
    struct epoll_event evs[64];
    while (now() < end) {
        int k = epoll_wait(ep, evs, 64, 100);
        for (int j = 0; j < k; j++) {
            int fd = (int)(evs[j].data.u64 >> 32), i = (int)(evs[j].data.u64 & 0xffffffffu);
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0)
                return 1;
            got[i] += (int)r;
            while (got[i] >= 64) {
                got[i] -= 64;
                n++;
                if (write(fd, req, sizeof req) != sizeof req)
                    return 1;
            }
        }
    }
    double rate = n / (now() - t0);
    /* end politely: stop sending, let each server see EOF and close */
    for (int i = 0; i < nconn; i++) {
        int fd = fds[i];
        shutdown(fd, SHUT_WR);
        while (read(fd, buf, sizeof buf) > 0)
            ;
        close(fd);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    printf("%.0f\ncpu %.3f\n", rate, cpu);
    return 0;
}
