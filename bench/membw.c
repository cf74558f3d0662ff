/* membw: measure main-memory read bandwidth (GB/s) with 1..N threads.
 * Used by bench/compare to compute the decode roofline: bytes read per token / bandwidth.
 * usage: bench_membw [THREADS] [MIB]   (defaults: all CPUs, 1024 MiB) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} read_job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Four independent accumulators so the loop is bound by loads, not by the add chain. */
static void *read_range(void *arg) {
    read_job *j = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= j->n; i += 4) {
        a ^= j->p[i];
        b ^= j->p[i + 1];
        c ^= j->p[i + 2];
        d ^= j->p[i + 3];
    }
    for (; i < j->n; i++) a ^= j->p[i];
    j->sum = a ^ b ^ c ^ d;
    return NULL;
}

static double measure(const uint64_t *buf, size_t n, int threads) {
    pthread_t tid[64];
    read_job jobs[64];
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        for (int t = 0; t < threads; t++) {
            size_t b = n * t / threads, e = n * (t + 1) / threads;
            jobs[t] = (read_job){buf + b, e - b, 0};
            pthread_create(&tid[t], NULL, read_range, &jobs[t]);
        }
        uint64_t x = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            x ^= jobs[t].sum;
        }
        double dt = now_s() - t0;
        double gbs = n * 8.0 / dt / 1e9;
        if (gbs > best) best = gbs;
        if (x == 42) fprintf(stderr, " "); /* keep the reads alive */
    }
    return best;
}

int main(int argc, char **argv) {
    int max_threads = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    if (max_threads < 1 || max_threads > 64 || mib < 16) {
        fprintf(stderr, "usage: bench_membw [THREADS 1..64] [MIB >= 16]\n");
        return 2;
    }
    size_t n = mib * 1024 * 1024 / 8;
    uint64_t *buf = malloc(n * 8);
    if (!buf) {
        fprintf(stderr, "bench_membw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    printf("{\"mib\": %zu", mib);
    for (int t = 1; t <= max_threads; t++) printf(", \"read_gbs_%dt\": %.2f", t, measure(buf, n, t));
    printf("}\n");
    free(buf);
    return 0;
}
