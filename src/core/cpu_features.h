/* What the CPU can run: the one global of the library, filled once on first use.
 *
 * The kernel level picks which SIMD kernels el_vec_dot_best() hands out. It is the best
 * level the hardware and the OS support, capped by the environment variable
 * EDGELLM_CPU=scalar|neon|avx2|avx512 (tests and benchmarks use it to force a path).
 * On arm64 the NEON level uses the dot-product (SDOT) kernels when `dotprod` is set.
 *
 * The AVX-512 kernels (the avx512 dots and the VNNI variant of the blocked kernels) are
 * checked against the scalar reference and the AVX2 kernels, bit for bit where those are
 * exact, on an emulated Tiger Lake (scripts/test-avx512: bochs, in CI); their speed on
 * real AVX-512 hardware has not been measured by this project. EL_AVX512_DEFAULT 0
 * would keep AVX2 there unless EDGELLM_CPU=avx512 asks for AVX-512. */
#ifndef EL_CORE_CPU_FEATURES_H
#define EL_CORE_CPU_FEATURES_H

#include <stdbool.h>

/* Whether AVX-512 hardware runs the avx512 level by default (1: since the kernels passed
 * tests/test_quant_dot and tests/test_matmul under scripts/test-avx512). */
#define EL_AVX512_DEFAULT 1

/* Whether CPUs with AVX-VNNI but no AVX-512 (recent laptop cores) run the AVX-VNNI
 * variant of the blocked kernels (kernels/x86/gemm_avxvnni.c) at the avx2 level. It is the
 * source and the instructions of the AVX-512 VNNI variant, which passed under emulation,
 * in their VEX encoding, which no emulator available here decodes (bochs 2.7 has no CPU
 * with AVX-VNNI); tests/test_matmul compares it bit for bit with AVX2 on any such CPU. */
#define EL_AVXVNNI_DEFAULT 1

/* Ordered so that `level >= EL_CPU_AVX2` means "x86 with at least AVX2" (false on arm64). */
typedef enum el_cpu_level {
    EL_CPU_SCALAR = 0,
    EL_CPU_NEON = 1,   /* arm64: Advanced SIMD (+dotprod / i8mm flags below) */
    EL_CPU_AVX2 = 2,   /* x86: AVX2 + FMA + F16C */
    EL_CPU_AVX512 = 3, /* x86: AVX-512 F + BW + VL + DQ + VNNI (plus the AVX2 set) */
    EL_CPU_LEVEL_COUNT
} el_cpu_level;

typedef struct el_cpu_features {
    /* x86 (each only when the OS also saves the registers, checked via xgetbv) */
    bool ssse3, avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni;
    bool avxvnni; /* AVX-VNNI (VEX vpdpbusd on 256-bit vectors), with AVX2 */
    /* arm64 */
    bool neon, dotprod, i8mm, fp16;
    el_cpu_level detected; /* best level the hardware + OS can run */
    el_cpu_level level;    /* level the kernels use: detected, capped by policy and EDGELLM_CPU */
    bool env_override;     /* EDGELLM_CPU was set to a name we know */
} el_cpu_features;

/* The table (detected on first call; thread-safe). Never NULL. */
const el_cpu_features *el_cpu_features_get(void);

/* Whether this machine can execute kernels of that level (ignores the policy cap). */
bool el_cpu_can_run(el_cpu_level level);

/* "scalar", "avx2", "avx512", "neon". */
const char *el_cpu_level_name(el_cpu_level level);

#endif
