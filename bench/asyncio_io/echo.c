/* Raw-C limit for asyncio_io/echo: the same loopback TCP echo as echo.lua
 * with nothing but epoll and non-blocking sockets in one thread. 64-byte
 * messages, one at a time per connection (the client writes, the server
 * reads up to 64 KiB and writes it back, the client reads the 64 bytes),
 * over 1 and 50 connections for about a second each: round trips/s; then
 * 64 MiB through one connection, echoed back: MiB/s. The system calls per
 * round trip are the protocol's: two reads, two writes, and an epoll_wait
 * now and then for a batch of ready sockets. usage: echo */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXCONN 50
#define CHUNK 65536
#define BIG (64 * 1024 * 1024)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void prep(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
        die("socket options");
}

/* n connected pairs over loopback: cli[i] (client end), srv[i] (server's) */
static void connect_pairs(int lfd, const struct sockaddr_in *sa, int n, int *cli, int *srv)
{
    for (int i = 0; i < n; i++) {
        cli[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (cli[i] < 0 || connect(cli[i], (const struct sockaddr *)sa, sizeof *sa) != 0)
            die("connect");
        srv[i] = accept(lfd, NULL, NULL);
        if (srv[i] < 0)
            die("accept");
        prep(cli[i]);
        prep(srv[i]);
    }
}

static void watch(int ep, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl");
}

/* tags: i*2 the client end of pair i, i*2+1 the server end */
static double pingpong(int lfd, const struct sockaddr_in *sa, int n)
{
    int cli[MAXCONN], srv[MAXCONN];
    size_t got[MAXCONN] = {0};
    connect_pairs(lfd, sa, n, cli, srv);
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    for (int i = 0; i < n; i++) {
        watch(ep, cli[i], EPOLLIN, (uint64_t)i * 2);
        watch(ep, srv[i], EPOLLIN, (uint64_t)i * 2 + 1);
    }
    char msg[64], buf[CHUNK];
    memset(msg, 'x', sizeof msg);
    for (int i = 0; i < n; i++)
        if (write(cli[i], msg, sizeof msg) != (ssize_t)sizeof msg)
            die("write");
    long total = 0;
    double t0 = now(), stop = t0 + 1.0;
    struct epoll_event evs[2 * MAXCONN];
    while (now() < stop) {
        int k = epoll_wait(ep, evs, 2 * MAXCONN, -1);
        for (int e = 0; e < k; e++) {
            int i = (int)(evs[e].data.u64 / 2);
            if (evs[e].data.u64 % 2) { /* the server: echo what came */
                ssize_t r = read(srv[i], buf, sizeof buf);
                if (r > 0 && write(srv[i], buf, (size_t)r) != r)
                    die("echo write");
                continue;
            }
            ssize_t r = read(cli[i], buf, sizeof msg - got[i]);
            if (r <= 0)
                continue;
            got[i] += (size_t)r;
            if (got[i] < sizeof msg)
                continue;
            got[i] = 0;
            total++;
            if (write(cli[i], msg, sizeof msg) != (ssize_t)sizeof msg)
                die("write");
        }
    }
    double dt = now() - t0;
    close(ep);
    for (int i = 0; i < n; i++) {
        close(cli[i]);
        close(srv[i]);
    }
    return (double)total / dt;
}

/* 64 MiB from the client end through the server's echo and back */
static double bulk(int lfd, const struct sockaddr_in *sa)
{
    int cli, srv;
    connect_pairs(lfd, sa, 1, &cli, &srv);
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    watch(ep, cli, EPOLLIN | EPOLLOUT, 0);
    watch(ep, srv, EPOLLIN, 1);
    static char out[CHUNK], echo[CHUNK], in[4 * CHUNK];
    memset(out, 'y', sizeof out);
    size_t sent = 0, got = 0, epos = 0, elen = 0; /* echo[epos..elen): not yet echoed */
    double t0 = now();
    struct epoll_event evs[4];
    while (got < BIG) {
        int k = epoll_wait(ep, evs, 4, -1);
        for (int e = 0; e < k; e++) {
            if (evs[e].data.u64 == 1) { /* server: echo, holding reads while a write waits */
                if (elen == epos) {
                    ssize_t r = read(srv, echo, sizeof echo);
                    if (r <= 0)
                        continue;
                    epos = 0;
                    elen = (size_t)r;
                }
                ssize_t w = write(srv, echo + epos, elen - epos);
                if (w > 0)
                    epos += (size_t)w;
                struct epoll_event ev = {.events = epos < elen ? EPOLLOUT : EPOLLIN,
                                         .data.u64 = 1};
                if (epoll_ctl(ep, EPOLL_CTL_MOD, srv, &ev) != 0)
                    die("epoll_ctl");
                continue;
            }
            if ((evs[e].events & EPOLLIN)) {
                ssize_t r = read(cli, in, sizeof in);
                if (r > 0)
                    got += (size_t)r;
            }
            if ((evs[e].events & EPOLLOUT) && sent < BIG) {
                ssize_t w = write(cli, out, sizeof out);
                if (w > 0)
                    sent += (size_t)w;
                if (sent == BIG) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
                    if (epoll_ctl(ep, EPOLL_CTL_MOD, cli, &ev) != 0)
                        die("epoll_ctl");
                }
            }
        }
    }
    double dt = now() - t0;
    close(ep);
    close(cli);
    close(srv);
    return BIG / dt / 1048576.0;
}

int main(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 128) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        die("listen");
    printf("RESULT echo_64b_1conn %.0f\n", pingpong(lfd, &sa, 1));
    printf("RESULT echo_64b_50conn %.0f\n", pingpong(lfd, &sa, MAXCONN));
    printf("RESULT echo_64mib_MiBps %.1f\n", bulk(lfd, &sa));
    close(lfd);
    return 0;
}
