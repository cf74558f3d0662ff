/* Run-time choice of dot-product and activation-quantization kernels, from the
 * CPU-feature table (core/cpu_features.h). */
#include <string.h>

#include "core/cpu_features.h"
#include "quant/quant.h"
#include "quant/quant_ref.h"

#if defined(__x86_64__)
#include "kernels/x86/kernels_x86.h"
#define EL_HAVE_X86_KERNELS 1
#elif defined(__aarch64__)
#include "kernels/arm/kernels_arm.h"
#define EL_HAVE_ARM_KERNELS 1
#endif

static el_vec_dot_fn dot_scalar(el_type t) {
    const el_type_traits *tr = el_type_get_traits(t);
    return tr ? tr->vec_dot_ref : NULL;
}

#ifdef EL_HAVE_X86_KERNELS
static el_vec_dot_fn dot_avx2(el_type t) {
    switch (t) {
    case EL_TYPE_F32: return el_vec_dot_f32_avx2;
    case EL_TYPE_F16: return el_vec_dot_f16_avx2;
    case EL_TYPE_BF16: return el_vec_dot_bf16_avx2;
    case EL_TYPE_Q4_0: return el_vec_dot_q4_0_q8_0_avx2;
    case EL_TYPE_Q4_1: return el_vec_dot_q4_1_q8_1_avx2;
    case EL_TYPE_Q5_0: return el_vec_dot_q5_0_q8_0_avx2;
    case EL_TYPE_Q5_1: return el_vec_dot_q5_1_q8_1_avx2;
    case EL_TYPE_Q8_0: return el_vec_dot_q8_0_q8_0_avx2;
    case EL_TYPE_Q2_K: return el_vec_dot_q2_K_q8_K_avx2;
    case EL_TYPE_Q3_K: return el_vec_dot_q3_K_q8_K_avx2;
    case EL_TYPE_Q4_K: return el_vec_dot_q4_K_q8_K_avx2;
    case EL_TYPE_Q5_K: return el_vec_dot_q5_K_q8_K_avx2;
    case EL_TYPE_Q6_K: return el_vec_dot_q6_K_q8_K_avx2;
    case EL_TYPE_Q8_K: return el_vec_dot_q8_K_q8_K_avx2;
    default: return NULL;
    }
}

static el_vec_dot_fn dot_avx512(el_type t) {
    switch (t) {
    case EL_TYPE_F32: return el_vec_dot_f32_avx512;
    case EL_TYPE_Q4_0: return el_vec_dot_q4_0_q8_0_avx512;
    case EL_TYPE_Q5_0: return el_vec_dot_q5_0_q8_0_avx512;
    case EL_TYPE_Q8_0: return el_vec_dot_q8_0_q8_0_avx512;
    case EL_TYPE_Q4_K: return el_vec_dot_q4_K_q8_K_avx512;
    case EL_TYPE_Q6_K: return el_vec_dot_q6_K_q8_K_avx512;
    default: return NULL;
    }
}

static el_quantize_fn quant_avx2(el_type t) {
    switch (t) {
    case EL_TYPE_Q8_0: return el_quantize_row_q8_0_avx2;
    case EL_TYPE_Q8_1: return el_quantize_row_q8_1_avx2;
    case EL_TYPE_Q8_K: return el_quantize_row_q8_K_avx2;
    default: return NULL;
    }
}
#endif

#ifdef EL_HAVE_ARM_KERNELS
/* SDOT kernels where the CPU has dotprod, else their base-NEON twins (same results). */
#define ARM_QUANT_DOT(name) (dotprod ? name##_dotprod : name##_neon)

static el_vec_dot_fn dot_neon(el_type t) {
    const bool dotprod = el_cpu_features_get()->dotprod;
    switch (t) {
    case EL_TYPE_F32: return el_vec_dot_f32_neon;
    case EL_TYPE_F16: return el_vec_dot_f16_neon;
    case EL_TYPE_BF16: return el_vec_dot_bf16_neon;
    case EL_TYPE_Q4_0: return ARM_QUANT_DOT(el_vec_dot_q4_0_q8_0);
    case EL_TYPE_Q4_1: return ARM_QUANT_DOT(el_vec_dot_q4_1_q8_1);
    case EL_TYPE_Q5_0: return ARM_QUANT_DOT(el_vec_dot_q5_0_q8_0);
    case EL_TYPE_Q5_1: return ARM_QUANT_DOT(el_vec_dot_q5_1_q8_1);
    case EL_TYPE_Q8_0: return ARM_QUANT_DOT(el_vec_dot_q8_0_q8_0);
    case EL_TYPE_Q2_K: return ARM_QUANT_DOT(el_vec_dot_q2_K_q8_K);
    case EL_TYPE_Q3_K: return ARM_QUANT_DOT(el_vec_dot_q3_K_q8_K);
    case EL_TYPE_Q4_K: return ARM_QUANT_DOT(el_vec_dot_q4_K_q8_K);
    case EL_TYPE_Q5_K: return ARM_QUANT_DOT(el_vec_dot_q5_K_q8_K);
    case EL_TYPE_Q6_K: return ARM_QUANT_DOT(el_vec_dot_q6_K_q8_K);
    case EL_TYPE_Q8_K: return ARM_QUANT_DOT(el_vec_dot_q8_K_q8_K);
    default: return NULL;
    }
}
#endif

el_vec_dot_fn el_vec_dot_for_level(el_type wtype, el_cpu_level level) {
    if (!el_cpu_can_run(level)) return NULL;
    switch (level) {
    case EL_CPU_SCALAR: return dot_scalar(wtype);
#ifdef EL_HAVE_X86_KERNELS
    case EL_CPU_AVX2: return dot_avx2(wtype);
    case EL_CPU_AVX512: return dot_avx512(wtype);
#endif
#ifdef EL_HAVE_ARM_KERNELS
    case EL_CPU_NEON: return dot_neon(wtype);
#endif
    default: return NULL;
    }
}

el_vec_dot_fn el_vec_dot_best(el_type wtype) {
    /* The table's level first, then every lower level down to the scalar reference
     * (levels this CPU cannot run, or without a kernel for this type, give NULL). */
    for (int l = (int)el_cpu_features_get()->level; l >= 0; l--) {
        el_vec_dot_fn f = el_vec_dot_for_level(wtype, (el_cpu_level)l);
        if (f) return f;
    }
    return NULL;
}

el_quantize_fn el_quantize_activation_for_level(el_type act_type, el_cpu_level level) {
    if (!el_cpu_can_run(level)) return NULL;
    if (level == EL_CPU_SCALAR) {
        const el_type_traits *tr = el_type_get_traits(act_type);
        return tr ? tr->quantize : NULL;
    }
#ifdef EL_HAVE_X86_KERNELS
    if (level == EL_CPU_AVX2 || level == EL_CPU_AVX512) return quant_avx2(act_type);
#endif
    return NULL;
}

void el_quantize_activation(el_type act_type, const float *src, void *dst, int64_t n) {
    if (act_type == EL_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    for (int l = (int)el_cpu_features_get()->level; l >= 0; l--) {
        el_quantize_fn f = el_quantize_activation_for_level(act_type, (el_cpu_level)l);
        if (f) {
            f(src, dst, n);
            return;
        }
    }
}
