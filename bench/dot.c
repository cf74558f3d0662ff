/* bench_dot: single-thread throughput of the dot-product kernels, in GB/s of weight
 * bytes read, for every level this CPU can run (scalar reference, NEON, AVX2, AVX-512).
 * A matrix-vector product over ROWS rows of N elements (0.3-4 MiB of weights by default:
 * in L2/L3, so it measures the kernel rather than DRAM) is repeated for ~0.3 s of this
 * thread's CPU time (CPU time, not wall time, so a busy shared machine skews it less).
 * A "-" means that level has no kernel of its own for the type (the next lower one serves).
 * usage: bench_dot [N] [ROWS]   (defaults 2048, 512; N a multiple of 32, K-quants need 256) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cpu_features.h"
#include "quant/quant.h"

static volatile float sink; /* keeps the kernel calls from being optimised away */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1 << 24) - 0.5f;
}

int main(int argc, char **argv) {
    const int64_t n = argc > 1 ? atoll(argv[1]) : 2048;
    const int64_t rows = argc > 2 ? atoll(argv[2]) : 512;
    if (n <= 0 || n % 32 || rows <= 0) {
        fprintf(stderr, "usage: bench_dot [N (multiple of 32)] [ROWS]\n");
        return 2;
    }
    const el_type types[] = {EL_TYPE_Q4_K, EL_TYPE_Q5_0, EL_TYPE_Q6_K, EL_TYPE_Q8_0, EL_TYPE_Q4_0,
                             EL_TYPE_Q4_1, EL_TYPE_Q5_1, EL_TYPE_Q2_K, EL_TYPE_Q3_K, EL_TYPE_Q5_K,
                             EL_TYPE_Q8_K, EL_TYPE_F32, EL_TYPE_F16, EL_TYPE_BF16};
    float *x = malloc((size_t)(n * rows) * sizeof *x), *act = malloc((size_t)n * sizeof *act);
    for (int64_t i = 0; i < n * rows; i++) x[i] = frand();
    for (int64_t i = 0; i < n; i++) act[i] = frand();
    printf("dot kernels, n=%lld rows=%lld, single thread, cpu %s\n", (long long)n, (long long)rows,
           el_cpu_level_name(el_cpu_features_get()->detected));
    /* columns: every level this machine can run */
    el_cpu_level levels[EL_CPU_LEVEL_COUNT];
    int nlev = 0;
    printf("%-5s %10s", "type", "MiB");
    for (int l = 0; l < EL_CPU_LEVEL_COUNT; l++)
        if (el_cpu_can_run((el_cpu_level)l)) {
            levels[nlev++] = (el_cpu_level)l;
            printf(" %10s", el_cpu_level_name((el_cpu_level)l));
        }
    printf("\n");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const el_type_traits *t = el_type_get_traits(types[ti]);
        if (n % t->block_size) continue;
        const size_t row_bytes = el_type_row_size(types[ti], n);
        uint8_t *w = malloc(row_bytes * (size_t)rows);
        void *a = malloc(el_type_row_size(t->vec_dot_type, n));
        for (int64_t r = 0; r < rows; r++) t->quantize(x + r * n, w + (size_t)r * row_bytes, n);
        el_quantize_activation(t->vec_dot_type, act, a, n);
        printf("%-5s %10.2f", t->name, (double)(row_bytes * (size_t)rows) / (1 << 20));
        for (int li = 0; li < nlev; li++) {
            el_vec_dot_fn f = el_vec_dot_for_level(types[ti], levels[li]);
            if (!f) {
                printf(" %10s", "-");
                continue;
            }
            int64_t reps = 0;
            double t0 = now_s(), t1;
            do {
                for (int64_t r = 0; r < rows; r++) sink += f(n, w + (size_t)r * row_bytes, a);
                reps++;
                t1 = now_s();
            } while (t1 - t0 < 0.3);
            printf(" %10.2f", (double)row_bytes * (double)rows * (double)reps / (t1 - t0) / 1e9);
        }
        printf("   GB/s\n");
        free(w);
        free(a);
    }
    free(x);
    free(act);
    return 0;
}
