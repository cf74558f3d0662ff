/* Matrix products at the shapes of a small model (Gemma 3 270M: d_model 640, FFN 2048,
 * vocabulary 262144 with the embedding reused as output):
 *   matvec (1 token, memory-bound: GB/s of weights read) and a 512-token prefill
 *   matmul (compute-bound: GFLOP/s), for Q4_K, Q5_0 (as in the file and regrouped at load:
 *   Q5_0_R4), Q6_K, Q8_0, with 1 and 2 threads;
 * plus the pool's round-trip latency and, for prefill, the per-row dot path that the
 * blocked kernels replace. Usage: bench_matmul [seconds per case, default 0.5] [what], what
 * one of: all (default), tg (matvecs only), pp (prefill only), tiny (TinyLlama 1.1B shapes:
 * d_model 2048, FFN 5632, 4 KV heads of 64; Q4_0, Q4_K, Q4_K_T, Q6_K, Q8_0; tiny-tg, tiny-pp: only
 * the matvecs or only the 512-token products of those; tiny-k: the 512-token Q4_K, Q4_K_T and Q6_K
 * products on 1 thread only, for quick A/B runs of the K-format kernels).
 *
 * Q4_K_T and Q5_0_R4 are Q4_K and Q5_0 regrouped as the model loader does on x86 (so
 * Q4_K_T is what a Q4_K model runs there; skipped where the loader would not make it).
 *
 * Each figure is given per wall second and, in brackets, per CPU second of the whole
 * process (both threads, spinning included): on a machine shared with other work the
 * wall figure drops with the CPU share we get, the CPU figure much less. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "core/timing.h"
#include "kernels/matmul.h"
#include "quant/quant.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1ull << 24))) * 2.f - 1.f;
}

static double budget_s = 0.5;
static int max_threads = 2; /* 1 for tiny-k */

static void *make_weights(el_type t, int64_t n_in, int64_t n_out) {
    /* layouts made at load: from the file's type, regrouped as the model loader does */
    const el_type file_t = t == EL_TYPE_Q5_0_R4 ? EL_TYPE_Q5_0 : t == EL_TYPE_Q4_K_T ? EL_TYPE_Q4_K : t;
    if (file_t != t) {
        void *q = make_weights(file_t, n_in, n_out);
        void *r = el_aligned_alloc(64, el_type_row_size(file_t, n_in) * (size_t)n_out);
        if (!r || el_repack_type(file_t, n_in, n_out) != t || el_repack(file_t, q, r, n_in, n_out) != 0) {
            fprintf(stderr, "cannot regroup %s %lldx%lld as %s\n", el_type_name(file_t), (long long)n_out,
                    (long long)n_in, el_type_name(t));
            exit(1);
        }
        el_aligned_free(q);
        return r;
    }
    const el_type_traits *tr = el_type_get_traits(t);
    size_t row = el_type_row_size(t, n_in);
    uint8_t *w = el_aligned_alloc(64, row * (size_t)n_out);
    float *f = malloc(sizeof(float) * (size_t)n_in);
    if (!w || !f) {
        fprintf(stderr, "out of memory for %s %lldx%lld\n", tr->name, (long long)n_out, (long long)n_in);
        exit(1);
    }
    for (int64_t r = 0; r < n_out; r++) {
        for (int64_t i = 0; i < n_in; i++) f[i] = frand() * 0.1f;
        tr->quantize(f, w + (size_t)r * row, n_in);
    }
    free(f);
    return w;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sort(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && v[k] < v[k - 1]; k--) {
            double tmp = v[k];
            v[k] = v[k - 1];
            v[k - 1] = tmp;
        }
}

/* Median wall and CPU seconds per call over repeated calls filling about budget_s. */
static void time_matmul(el_pool *pool, const void *w, el_type t, int64_t n_in, int64_t n_out, const float *x,
                        int64_t n_tok, float *y, void *work, double *wall, double *cpu) {
    el_matmul(pool, w, t, n_in, n_out, x, n_tok, y, work); /* warm up */
    double walls[64], cpus[64];
    int n = 0;
    double start = el_time_s();
    while (n < 64 && (n < 3 || el_time_s() - start < budget_s)) {
        double t0 = el_time_s(), c0 = cpu_s();
        el_matmul(pool, w, t, n_in, n_out, x, n_tok, y, work);
        walls[n] = el_time_s() - t0;
        cpus[n++] = cpu_s() - c0;
    }
    sort(walls, n);
    sort(cpus, n);
    *wall = walls[n / 2];
    *cpu = cpus[n / 2];
}

/* The path the blocked kernels replace: one vec_dot per (row, token), one thread
 * (CPU seconds). */
static double time_dot_path(const void *w, el_type t, int64_t n_in, int64_t n_out, const float *x,
                            int64_t n_tok, float *y, void *work) {
    el_type at = el_type_get_traits(t)->vec_dot_type;
    size_t arow = el_type_row_size(at, n_in), wrow = el_type_row_size(t, n_in);
    el_vec_dot_fn dot = el_vec_dot_best(t);
    double t0 = cpu_s();
    for (int64_t k = 0; k < n_tok; k++) el_quantize_activation(at, x + k * n_in, (uint8_t *)work + k * arow, n_in);
    for (int64_t r = 0; r < n_out; r++)
        for (int64_t k = 0; k < n_tok; k++)
            y[k * n_out + r] = dot(n_in, (const uint8_t *)w + r * wrow, (const uint8_t *)work + k * arow);
    return cpu_s() - t0;
}

static void bench_shape(el_pool *pools[3], el_type t, int64_t n_out, int64_t n_in, int64_t n_tok, bool dot_path) {
    const char *name = el_type_name(t);
    if (!el_matmul_supported(t, n_in)) {
        printf("%-5s %7lldx%-5lld tok=%-4lld  n/a (n_in not a multiple of the block)\n", name,
               (long long)n_out, (long long)n_in, (long long)n_tok);
        return;
    }
    void *w = make_weights(t, n_in, n_out);
    float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    float *y = malloc(sizeof(float) * (size_t)(n_out * n_tok));
    size_t ws = el_matmul_work_size(t, n_in, n_tok);
    void *work = el_aligned_alloc(64, ws ? ws : 64);
    if (!x || !y || !work) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = frand();
    double wbytes = (double)el_type_row_size(t, n_in) * (double)n_out;
    double flop = 2.0 * (double)n_in * (double)n_out * (double)n_tok;
    printf("%-5s %7lldx%-5lld tok=%-4lld", name, (long long)n_out, (long long)n_in, (long long)n_tok);
    for (int k = 1; k <= max_threads; k++) {
        double s, c;
        time_matmul(pools[k], w, t, n_in, n_out, x, n_tok, y, work, &s, &c);
        if (n_tok == 1)
            printf("  %dT %8.1f us %5.1f GB/s [%5.1f]", k, s * 1e6, wbytes / s * 1e-9, wbytes / c * 1e-9);
        else
            printf("  %dT %7.2f ms %6.1f GFLOP/s [%6.1f]", k, s * 1e3, flop / s * 1e-9, flop / c * 1e-9);
    }
    if (dot_path) {
        double c = time_dot_path(w, t, n_in, n_out, x, n_tok, y, work);
        printf("  | per-row dots [%5.1f]", flop / c * 1e-9);
    }
    printf("\n");
    fflush(stdout);
    el_aligned_free(w);
    el_aligned_free(work);
    free(x);
    free(y);
}

static void nop_job(void *ctx, int ith, int nth) {
    (void)ctx;
    (void)ith;
    (void)nth;
}

int main(int argc, char **argv) {
    if (argc > 1) budget_s = atof(argv[1]);
    const char *what = argc > 2 ? argv[2] : "all";
    const bool tg = !strcmp(what, "all") || !strcmp(what, "tg"), pp = !strcmp(what, "all") || !strcmp(what, "pp");
    const bool tiny = !strncmp(what, "tiny", 4); /* tiny, tiny-tg, tiny-pp */
    const bool tiny_k = !strcmp(what, "tiny-k");
    const bool tiny_tg = tiny && !tiny_k && strcmp(what, "tiny-pp") != 0, tiny_pp = tiny && strcmp(what, "tiny-tg") != 0;
    if (tiny_k) max_threads = 1;
    el_pool *pools[3] = {NULL, el_pool_create(1, NULL), el_pool_create(2, NULL)};
    if (!pools[1] || !pools[2]) {
        fprintf(stderr, "cannot create thread pools\n");
        return 1;
    }
    printf("cpu level: %s (kernels %s)\n", el_cpu_level_name(el_cpu_features_get()->level), el_matmul_kernels_name());

    const int reps = 20000;
    double t0 = el_time_s();
    for (int i = 0; i < reps; i++) el_pool_run(pools[2], nop_job, NULL);
    printf("pool round trip (2 threads, empty job): %.2f us\n\n", (el_time_s() - t0) / reps * 1e6);

    const el_type types[] = {EL_TYPE_Q4_K, EL_TYPE_Q5_0, EL_TYPE_Q5_0_R4, EL_TYPE_Q6_K, EL_TYPE_Q8_0};
    const size_t n_types = sizeof types / sizeof types[0];
    if (tg) {
        printf("matvec (1 token):\n");
        for (size_t i = 0; i < n_types; i++) {
            bench_shape(pools, types[i], 640, 2048, 1, false);
            bench_shape(pools, types[i], 2048, 640, 1, false);
        }
        bench_shape(pools, EL_TYPE_Q8_0, 262144, 640, 1, false);
    }
    if (pp) {
        printf("\nprefill (512 tokens):\n");
        for (size_t i = 0; i < n_types; i++) {
            bench_shape(pools, types[i], 640, 2048, 512, true);
            bench_shape(pools, types[i], 2048, 640, 512, true);
        }
    }
    if (tiny) {
        const el_type tt[] = {EL_TYPE_Q4_0, EL_TYPE_Q4_K, EL_TYPE_Q4_K_T, EL_TYPE_Q6_K, EL_TYPE_Q8_0};
        const int64_t shapes[][2] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}};
        for (int n_tok = 1; n_tok <= 512; n_tok += 511) {
            if ((n_tok == 1 && !tiny_tg) || (n_tok > 1 && !tiny_pp)) continue;
            printf("\n%s (TinyLlama shapes):\n", n_tok == 1 ? "matvec" : "prefill (512 tokens)");
            for (size_t i = 0; i < sizeof tt / sizeof tt[0]; i++) {
                if (tt[i] == EL_TYPE_Q4_K_T && el_repack_type(EL_TYPE_Q4_K, 2048, 2048) != EL_TYPE_Q4_K_T) continue;
                if (tiny_k && tt[i] != EL_TYPE_Q4_K && tt[i] != EL_TYPE_Q4_K_T && tt[i] != EL_TYPE_Q6_K) continue;
                for (size_t k = 0; k < 4; k++) bench_shape(pools, tt[i], shapes[k][0], shapes[k][1], n_tok, false);
                /* 4x the vocabulary projection: far larger than the L3, so read from DRAM as
                 * in decoding (the shapes above stay largely in an L3 of 32 MiB) */
                if (n_tok == 1) bench_shape(pools, tt[i], 4 * 32000, 2048, n_tok, false);
            }
        }
    }
    el_pool_destroy(pools[1]);
    el_pool_destroy(pools[2]);
    return 0;
}
