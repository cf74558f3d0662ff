/* membw: main-memory read bandwidth (GB/s) with 1..N threads, the denominator of the
 * decode roofline that bench/compare prints (bytes read per token / bandwidth).
 *
 * What it does so the figure is the real sustained read bandwidth, not a loop bound:
 *  - 32-byte AVX2 loads (when the CPU has AVX2), 8 independent accumulators, 256 bytes
 *    per iteration, so the loop is bound by the memory system, not by an add chain;
 *  - one buffer per thread, allocated and first touched by that thread (its pages are
 *    local to it; nothing is shared between threads);
 *  - total size well beyond the last-level cache (default 1024 MiB over all threads);
 *  - threads start together at a barrier; a run's time is from the barrier to the last
 *    thread's end; the best of REPS runs is kept;
 *  - pages: both 2 MiB (madvise MADV_HUGEPAGE) and 4 KiB, reported separately.
 * usage: bench_membw [THREADS] [MIB] [REPS]   (defaults: all CPUs, 1024 MiB, 7)
 * Output: one JSON object: read_gbs_Nt with N threads on 2 MiB pages (transparent huge
 * pages, where the kernel gives them), read_gbs_4k_Nt on 4 KiB pages (what a buffer gets
 * without madvise, and what a file mapped from an ext4 page cache gets). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct worker {
    size_t bytes;
    uint8_t *buf;
    uint64_t sum;
    double t_end;
    int ok;
    pthread_barrier_t *start, *done;
    int reps;
    int huge;
} worker;

#define HUGE_PAGE (2u << 20)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t read_scalar(const uint8_t *p, size_t bytes) {
    const uint64_t *q = (const uint64_t *)p;
    size_t n = bytes / 8;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        a += q[i];
        b += q[i + 1];
        c += q[i + 2];
        d += q[i + 3];
    }
    return a ^ b ^ c ^ d;
}

#if defined(__x86_64__)
/* bytes is a multiple of 256 (the caller rounds it). */
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t bytes) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = 0; i < bytes; i += 256) {
        const __m256i *v = (const __m256i *)(p + i);
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + 0));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 3));
        a4 = _mm256_add_epi64(a4, _mm256_load_si256(v + 4));
        a5 = _mm256_add_epi64(a5, _mm256_load_si256(v + 5));
        a6 = _mm256_add_epi64(a6, _mm256_load_si256(v + 6));
        a7 = _mm256_add_epi64(a7, _mm256_load_si256(v + 7));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3)),
                          _mm256_xor_si256(_mm256_xor_si256(a4, a5), _mm256_xor_si256(a6, a7)));
    uint64_t l[4];
    _mm256_storeu_si256((__m256i *)l, a0);
    return l[0] ^ l[1] ^ l[2] ^ l[3];
}
#endif

static uint64_t read_all(const uint8_t *p, size_t bytes) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) return read_avx2(p, bytes);
#endif
    return read_scalar(p, bytes);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    /* Allocated and first touched here, so the pages belong to this thread's node. */
    w->buf = aligned_alloc(HUGE_PAGE, w->bytes);
    w->ok = w->buf != NULL;
#ifdef MADV_HUGEPAGE
    /* Huge pages unless asked not to: with 4 KiB pages the page walks of a streaming read
     * cost a third of the bandwidth on some VMs; this is the best the machine can do. */
    if (w->ok && w->huge) madvise(w->buf, w->bytes, MADV_HUGEPAGE);
#endif
    if (w->ok)
        for (size_t i = 0; i < w->bytes; i += 8) {
            uint64_t v = i * 0x9E3779B97F4A7C15ull;
            memcpy(w->buf + i, &v, 8);
        }
    for (int r = 0; r < w->reps; r++) {
        pthread_barrier_wait(w->start);
        if (w->ok) w->sum ^= read_all(w->buf, w->bytes);
        w->t_end = now_s();
        pthread_barrier_wait(w->done);
    }
    free(w->buf);
    return NULL;
}

/* Best GB/s over reps runs of `threads` threads reading mib MiB in all. */
static double measure(int threads, size_t mib, int reps, int huge, int *failed) {
    pthread_t tid[64];
    worker w[64];
    pthread_barrier_t start, done;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&done, NULL, (unsigned)threads + 1);
    size_t per = mib * 1024 * 1024 / (size_t)threads / HUGE_PAGE * HUGE_PAGE;
    if (per == 0) per = HUGE_PAGE;
    for (int t = 0; t < threads; t++) {
        w[t] = (worker){.bytes = per, .start = &start, .done = &done, .reps = reps, .huge = huge};
        pthread_create(&tid[t], NULL, worker_main, &w[t]);
    }
    double best = 0;
    for (int r = 0; r < reps; r++) {
        pthread_barrier_wait(&start);
        double t0 = now_s();
        pthread_barrier_wait(&done);
        double t1 = 0;
        for (int t = 0; t < threads; t++)
            if (w[t].t_end > t1) t1 = w[t].t_end;
        double gbs = (double)per * threads / (t1 - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    uint64_t x = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        x ^= w[t].sum;
        if (!w[t].ok) *failed = 1;
    }
    if (x == 42) fprintf(stderr, " "); /* keeps the reads alive */
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&done);
    return best;
}

int main(int argc, char **argv) {
    int max_threads = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    long mib = argc > 2 ? atol(argv[2]) : 1024;
    int reps = argc > 3 ? atoi(argv[3]) : 7;
    if (max_threads < 1 || max_threads > 64 || mib < 16 || mib > (1L << 20) || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: bench_membw [THREADS 1..64] [MIB 16..1048576] [REPS 1..1000]\n");
        return 2;
    }
    printf("{\"mib\": %ld, \"reps\": %d, \"simd\": \"%s\"", mib, reps,
#if defined(__x86_64__)
           __builtin_cpu_supports("avx2") ? "avx2" : "scalar"
#else
           "scalar"
#endif
    );
    int failed = 0;
    for (int t = 1; t <= max_threads; t++)
        printf(", \"read_gbs_%dt\": %.2f", t, measure(t, (size_t)mib, reps, 1, &failed));
    for (int t = 1; t <= max_threads; t++)
        printf(", \"read_gbs_4k_%dt\": %.2f", t, measure(t, (size_t)mib, reps, 0, &failed));
    printf("}\n");
    if (failed) {
        fprintf(stderr, "bench_membw: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    return 0;
}
