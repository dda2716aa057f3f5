/* Ferry live-patch demo server, version 2.
 *
 * A TCP server on loopback with a pool of worker threads, a static request counter and a main
 * loop that never returns. Protocol: the client sends "ADD <a> <b>\n" and reads one line back.
 * Fixes the handler (adds), reorders and extends `struct stats` and counts accepted connections
 * in the main loop. ferry_helper_main_loop is the patch author's helper that carries the running
 * v1 main loop over to this version (left out when built with FERRY_NO_HELPER, for patches that
 * restart the main loop at its entry instead).
 * Usage: server PORT_FILE   (binds 127.0.0.1:0 and writes the chosen port to PORT_FILE)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WORKERS 4
#define QUEUE_CAP 256

struct stats {
    long errors;
    long accepted;
    long requests;
};

static struct stats g_stats;
static pthread_mutex_t g_stats_lock = PTHREAD_MUTEX_INITIALIZER;

static int g_queue[QUEUE_CAP];
static int g_head, g_tail, g_len;
static pthread_mutex_t g_queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_queue_nonempty = PTHREAD_COND_INITIALIZER;

__attribute__((noipa)) static void enqueue(int fd) {
    pthread_mutex_lock(&g_queue_lock);
    if (g_len == QUEUE_CAP) {
        pthread_mutex_unlock(&g_queue_lock);
        close(fd);
        return;
    }
    g_queue[g_tail] = fd;
    g_tail = (g_tail + 1) % QUEUE_CAP;
    g_len++;
    pthread_cond_signal(&g_queue_nonempty);
    pthread_mutex_unlock(&g_queue_lock);
}

__attribute__((noipa)) static int dequeue(void) {
    pthread_mutex_lock(&g_queue_lock);
    while (g_len == 0)
        pthread_cond_wait(&g_queue_nonempty, &g_queue_lock);
    int fd = g_queue[g_head];
    g_head = (g_head + 1) % QUEUE_CAP;
    g_len--;
    pthread_mutex_unlock(&g_queue_lock);
    return fd;
}

/* Parses "ADD a b" and writes the reply into out. */
__attribute__((noipa)) static int handle_request(const char *req, char *out, size_t cap) {
    long a, b;
    pthread_mutex_lock(&g_stats_lock);
    long served = ++g_stats.requests;
    pthread_mutex_unlock(&g_stats_lock);
    if (sscanf(req, "ADD %ld %ld", &a, &b) != 2) {
        pthread_mutex_lock(&g_stats_lock);
        g_stats.errors++;
        pthread_mutex_unlock(&g_stats_lock);
        return snprintf(out, cap, "error served=%ld\n", served);
    }
    long sum = a + b; /* fixed */
    pthread_mutex_lock(&g_stats_lock);
    long accepted = g_stats.accepted;
    pthread_mutex_unlock(&g_stats_lock);
    return snprintf(out, cap, "sum=%ld served=%ld accepted=%ld\n", sum, served, accepted);
}

__attribute__((noipa)) static void serve(int fd) {
    char buf[128];
    char out[128];
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof buf - 1) {
        r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += r;
        if (memchr(buf, '\n', n))
            break;
    }
    buf[n < 0 ? 0 : n] = 0;
    int len = handle_request(buf, out, sizeof out);
    ssize_t off = 0;
    while (off < len) {
        r = write(fd, out + off, len - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        off += r;
    }
    close(fd);
}

__attribute__((noipa)) static void *worker(void *arg) {
    (void)arg;
    for (;;)
        serve(dequeue());
    return NULL;
}

/* The main loop: accepts connections forever and hands them to the workers. */
__attribute__((noipa)) static void main_loop(int lfd) {
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            pthread_mutex_lock(&g_stats_lock);
            g_stats.errors++;
            pthread_mutex_unlock(&g_stats_lock);
            continue;
        }
        pthread_mutex_lock(&g_stats_lock);
        g_stats.accepted++;
        pthread_mutex_unlock(&g_stats_lock);
        enqueue(c);
    }
}

/* Helper run once by the live patcher in the main thread, at the old main loop's safe point
 * (its accept call), before the thread enters the new main loop. It receives the old frame's
 * variables by name (here the listening socket) and returns 0 when the handover may proceed. */
#ifndef FERRY_NO_HELPER
static int g_handover_fd = -1;
__attribute__((noipa, used)) long ferry_helper_main_loop(int lfd) {
#ifdef FERRY_FAULTY_HELPER
    *(volatile int *)(long)(lfd - lfd) = lfd; /* deliberately faults: tests the rollback */
#endif
    if (lfd < 0)
        return 1;
    g_handover_fd = lfd;
    pthread_mutex_lock(&g_stats_lock);
    g_stats.accepted = 0;
    pthread_mutex_unlock(&g_stats_lock);
    return 0;
}
#endif

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT_FILE\n", argv[0]);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 512) != 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    pthread_t t;
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&t, NULL, worker, NULL);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return 1;
    fprintf(f, "%d\n", ntohs(addr.sin_port));
    fclose(f);
    rename(tmp, argv[1]);
    main_loop(lfd);
    return 0;
}
