/* CPU feature detection: cpuid + xgetbv on x86, getauxval on arm64. */
#include "core/cpu_features.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define EL_X86 1
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define EL_ARM64 1
#endif

static el_cpu_features g_cpu; /* the one global: written once under g_cpu_once */
static pthread_once_t g_cpu_once = PTHREAD_ONCE_INIT;

#ifdef EL_X86
/* xgetbv via asm so this file needs no -mxsave. Only call when OSXSAVE is set. */
static unsigned long long read_xcr0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static void detect_x86(el_cpu_features *f) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool ssse3 = c & (1u << 9), fma = c & (1u << 12), osxsave = c & (1u << 27);
    bool avx = c & (1u << 28), f16c = c & (1u << 29);
    f->ssse3 = ssse3;

    /* The OS must save YMM (XCR0 bits 1,2) for AVX and opmask/ZMM (bits 5,6,7) for AVX-512. */
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    bool os_ymm = (xcr0 & 0x6) == 0x6;
    bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;
    if (!os_ymm) return;
    f->avx = avx;
    f->fma = fma;
    f->f16c = f16c;

    unsigned int max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned int max_subleaf = a;
    f->avx2 = avx && (b & (1u << 5));
    if (os_zmm) {
        f->avx512f = b & (1u << 16);
        f->avx512dq = b & (1u << 17);
        f->avx512bw = b & (1u << 30);
        f->avx512vl = b & (1u << 31);
        f->avx512vnni = c & (1u << 11);
    }
    if (max_subleaf >= 1) {
        unsigned int a1, b1, c1, d1;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        f->avxvnni = f->avx2 && (a1 & (1u << 4));
    }
    if (f->avx2 && f->fma && f->f16c) {
        f->detected = EL_CPU_AVX2;
        if (f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->avx512vnni)
            f->detected = EL_CPU_AVX512;
    }
}
#endif

#ifdef EL_ARM64
static void detect_arm64(el_cpu_features *f) {
    /* Bit numbers from the arm64 Linux ABI (asm/hwcap.h), spelled out so old headers do. */
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    f->neon = hw & (1ul << 1);     /* HWCAP_ASIMD */
    f->fp16 = hw & (1ul << 10);    /* HWCAP_ASIMDHP */
    f->dotprod = hw & (1ul << 20); /* HWCAP_ASIMDDP */
    f->i8mm = hw2 & (1ul << 13);   /* HWCAP2_I8MM */
    if (f->neon) f->detected = EL_CPU_NEON;
}
#endif

/* Whether hardware of level det can run kernels of level want. */
static bool level_runs_on(el_cpu_level det, el_cpu_level want) {
    switch (want) {
    case EL_CPU_SCALAR: return true;
    case EL_CPU_AVX2: return det == EL_CPU_AVX2 || det == EL_CPU_AVX512;
    case EL_CPU_AVX512: return det == EL_CPU_AVX512;
    case EL_CPU_NEON: return det == EL_CPU_NEON;
    default: return false;
    }
}

static void detect_once(void) {
    el_cpu_features f;
    memset(&f, 0, sizeof f);
    f.detected = EL_CPU_SCALAR;
#if defined(EL_X86)
    detect_x86(&f);
#elif defined(EL_ARM64)
    detect_arm64(&f);
#endif
    f.level = f.detected;
    if (f.level == EL_CPU_AVX512 && !EL_AVX512_DEFAULT) f.level = EL_CPU_AVX2;

    /* EDGELLM_CPU picks the level among those the hardware can run. */
    const char *env = getenv("EDGELLM_CPU");
    if (env && *env) {
        for (int l = 0; l < EL_CPU_LEVEL_COUNT; l++) {
            if (strcmp(env, el_cpu_level_name((el_cpu_level)l)) != 0) continue;
            f.env_override = true;
            /* Any level the hardware can run is honoured (avx512 included); one it
             * cannot run leaves the default (avx512 on an AVX2 machine -> avx2). */
            if (level_runs_on(f.detected, (el_cpu_level)l)) f.level = (el_cpu_level)l;
            break;
        }
    }
    g_cpu = f;
}

const el_cpu_features *el_cpu_features_get(void) {
    pthread_once(&g_cpu_once, detect_once);
    return &g_cpu;
}

bool el_cpu_can_run(el_cpu_level level) {
    return level_runs_on(el_cpu_features_get()->detected, level);
}

const char *el_cpu_level_name(el_cpu_level level) {
    switch (level) {
    case EL_CPU_SCALAR: return "scalar";
    case EL_CPU_AVX2: return "avx2";
    case EL_CPU_AVX512: return "avx512";
    case EL_CPU_NEON: return "neon";
    default: return "?";
    }
}
