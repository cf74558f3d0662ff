/* A minimal in-process HTTP/1.1 server on a loopback port that answers every request
 * with bytes the caller set beforehand. The chat-response fuzz harness uses it so that
 * hostile bodies reach the cloud client's parsers through libcurl, exactly as a
 * provider's would (the parsers are static in src/cloud/cloud.c).
 *
 * One thread polls the listening socket and up to FUZZ_UP_CLIENTS keep-alive
 * connections; a request is complete once its headers and Content-Length body are in. */
#ifndef FUZZ_UPSTREAM_H
#define FUZZ_UPSTREAM_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FUZZ_UP_CLIENTS 8
#define FUZZ_UP_MAX_REQUEST ((size_t)1 << 20)

typedef struct fuzz_up_client {
    int fd; /* -1: free slot */
    char *buf;
    size_t len, cap;
} fuzz_up_client;

typedef struct fuzz_upstream {
    int lfd, wake[2], port;
    pthread_t thread;
    int running;
    pthread_mutex_t mu; /* guards resp and served */
    char *resp;         /* the whole next response, status line to last byte */
    size_t resp_len, resp_cap;
    unsigned long served;
    fuzz_up_client cl[FUZZ_UP_CLIENTS];
} fuzz_upstream;

/* Length of the first complete request in buf, 0 if more bytes are needed, -1 if it
 * cannot be a request this server understands. */
static long fuzz_up_request_len(const char *buf, size_t len) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return len > 65536 ? -1 : 0;
    size_t head = (size_t)(end - buf) + 4, body = 0;
    for (const char *l = memchr(buf, '\n', head); l && l < end; l = memchr(l + 1, '\n', (size_t)(end - l))) {
        if (!strncasecmp(l + 1, "content-length:", 15)) body = strtoul(l + 16, NULL, 10);
    }
    if (body > FUZZ_UP_MAX_REQUEST) return -1;
    return head + body <= len ? (long)(head + body) : 0;
}

static void fuzz_up_drop(fuzz_up_client *c) {
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static int fuzz_up_send(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads what a client sent and answers each complete request in it. */
static void fuzz_up_serve(fuzz_upstream *u, fuzz_up_client *c) {
    if (c->cap - c->len < 4096) {
        size_t cap = c->cap ? c->cap * 2 : 8192;
        char *nb = cap <= 2 * FUZZ_UP_MAX_REQUEST ? realloc(c->buf, cap) : NULL;
        if (!nb) {
            fuzz_up_drop(c);
            return;
        }
        c->buf = nb;
        c->cap = cap;
    }
    ssize_t got = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (got <= 0) {
        fuzz_up_drop(c);
        return;
    }
    c->len += (size_t)got;
    for (;;) {
        long n = fuzz_up_request_len(c->buf, c->len);
        if (n < 0) {
            fuzz_up_drop(c);
            return;
        }
        if (n == 0) return;
        pthread_mutex_lock(&u->mu);
        int rc = fuzz_up_send(c->fd, u->resp, u->resp_len);
        u->served++;
        pthread_mutex_unlock(&u->mu);
        if (rc) {
            fuzz_up_drop(c);
            return;
        }
        memmove(c->buf, c->buf + n, c->len - (size_t)n);
        c->len -= (size_t)n;
    }
}

static void *fuzz_up_main(void *arg) {
    fuzz_upstream *u = arg;
    for (;;) {
        struct pollfd pf[2 + FUZZ_UP_CLIENTS];
        int idx[2 + FUZZ_UP_CLIENTS], n = 2;
        pf[0] = (struct pollfd){.fd = u->wake[0], .events = POLLIN};
        pf[1] = (struct pollfd){.fd = u->lfd, .events = POLLIN};
        for (int i = 0; i < FUZZ_UP_CLIENTS; i++)
            if (u->cl[i].fd >= 0) {
                pf[n] = (struct pollfd){.fd = u->cl[i].fd, .events = POLLIN};
                idx[n++] = i;
            }
        if (poll(pf, (nfds_t)n, -1) < 0) continue;
        if (pf[0].revents) break;
        for (int k = 2; k < n; k++)
            if (pf[k].revents) fuzz_up_serve(u, &u->cl[idx[k]]);
        if (pf[1].revents & POLLIN) {
            int fd = accept(u->lfd, NULL, NULL);
            if (fd < 0) continue;
            int slot = -1;
            for (int i = 0; i < FUZZ_UP_CLIENTS && slot < 0; i++)
                if (u->cl[i].fd < 0) slot = i;
            if (slot < 0) close(fd);
            else u->cl[slot].fd = fd;
        }
    }
    for (int i = 0; i < FUZZ_UP_CLIENTS; i++) {
        if (u->cl[i].fd >= 0) close(u->cl[i].fd);
        free(u->cl[i].buf);
    }
    return NULL;
}

/* Sets the bytes sent for every following request. Returns 0, or -1 if out of memory. */
static int fuzz_upstream_set(fuzz_upstream *u, const char *resp, size_t n) {
    pthread_mutex_lock(&u->mu);
    int rc = 0;
    if (n > u->resp_cap) {
        char *nb = realloc(u->resp, n);
        if (nb) {
            u->resp = nb;
            u->resp_cap = n;
        } else {
            rc = -1;
        }
    }
    if (!rc) {
        if (n) memcpy(u->resp, resp, n);
        u->resp_len = n;
    }
    pthread_mutex_unlock(&u->mu);
    return rc;
}

static void fuzz_upstream_stop(fuzz_upstream *u) {
    if (u->running) {
        (void)!write(u->wake[1], "x", 1);
        pthread_join(u->thread, NULL);
        u->running = 0;
    }
    if (u->lfd >= 0) close(u->lfd);
    if (u->wake[0] >= 0) close(u->wake[0]);
    if (u->wake[1] >= 0) close(u->wake[1]);
    u->lfd = u->wake[0] = u->wake[1] = -1;
    pthread_mutex_destroy(&u->mu);
    free(u->resp);
    u->resp = NULL;
}

/* Listens on 127.0.0.1 at a free port (u->port). Returns 0, or -1. */
static int fuzz_upstream_start(fuzz_upstream *u) {
    memset(u, 0, sizeof *u);
    u->lfd = u->wake[0] = u->wake[1] = -1;
    for (int i = 0; i < FUZZ_UP_CLIENTS; i++) u->cl[i].fd = -1;
    pthread_mutex_init(&u->mu, NULL);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    u->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (u->lfd < 0 || bind(u->lfd, (struct sockaddr *)&a, sizeof a) || listen(u->lfd, 16) ||
        getsockname(u->lfd, (struct sockaddr *)&a, &alen) || pipe(u->wake)) {
        fuzz_upstream_stop(u);
        return -1;
    }
    u->port = ntohs(a.sin_port);
    if (pthread_create(&u->thread, NULL, fuzz_up_main, u)) {
        fuzz_upstream_stop(u);
        return -1;
    }
    u->running = 1;
    return 0;
}

#endif
