/* The type table: names, block geometry and the functions of every format. */
#include "quant/quant.h"

#include <string.h>

#include "quant/blocks.h"
#include "quant/quant_ref.h"

#define PLAIN(nm, sz, fn)                                                                            \
    {.name = nm, .block_size = 1, .type_size = sz, .supported = true, .vec_dot_type = EL_TYPE_F32,     \
     .dequantize = el_dequantize_row_##fn, .quantize = el_quantize_row_##fn, .vec_dot_ref = el_vec_dot_##fn##_ref}
#define QUANT(nm, bs, ts, vdt, fn, dot)                                                                \
    {.name = nm, .block_size = bs, .type_size = ts, .is_quantized = true, .supported = true,           \
     .vec_dot_type = vdt, .dequantize = el_dequantize_row_##fn, .quantize = el_quantize_row_##fn, .vec_dot_ref = dot}
#define QUANT_ACT(nm, bs, ts, vdt, fn, dot)                                                           \
    {.name = nm, .block_size = bs, .type_size = ts, .is_quantized = true, .supported = true,           \
     .vec_dot_type = vdt, .dequantize = el_dequantize_row_##fn, .quantize = el_quantize_act_##fn, .vec_dot_ref = dot}
#define UNSUPPORTED(nm, bs, ts) {.name = nm, .block_size = bs, .type_size = ts, .is_quantized = true}

/* Indexed by ggml type id. Types we know the size of but cannot compute with
 * (IQ formats, ...) are listed so a file using them is named, not rejected as garbage. */
static const el_type_traits TRAITS[EL_TYPE_COUNT] = {
    [EL_TYPE_F32] = PLAIN("F32", 4, f32),
    [EL_TYPE_F16] = PLAIN("F16", 2, f16),
    [EL_TYPE_Q4_0] = QUANT("Q4_0", QK4_0, sizeof(block_q4_0), EL_TYPE_Q8_0, q4_0, el_vec_dot_q4_0_q8_0_ref),
    [EL_TYPE_Q4_1] = QUANT("Q4_1", QK4_1, sizeof(block_q4_1), EL_TYPE_Q8_1, q4_1, el_vec_dot_q4_1_q8_1_ref),
    [EL_TYPE_Q5_0] = QUANT("Q5_0", QK5_0, sizeof(block_q5_0), EL_TYPE_Q8_0, q5_0, el_vec_dot_q5_0_q8_0_ref),
    [EL_TYPE_Q5_1] = QUANT("Q5_1", QK5_1, sizeof(block_q5_1), EL_TYPE_Q8_1, q5_1, el_vec_dot_q5_1_q8_1_ref),
    /* Q8_0 and Q8_1 quantize with llama.cpp's run-time rule (el_quantize_act_q8_0): every
     * such row we make is an activation or a KV-cache row. */
    [EL_TYPE_Q8_0] = QUANT_ACT("Q8_0", QK8_0, sizeof(block_q8_0), EL_TYPE_Q8_0, q8_0, el_vec_dot_q8_0_q8_0_ref),
    [EL_TYPE_Q8_1] = QUANT_ACT("Q8_1", QK8_1, sizeof(block_q8_1), EL_TYPE_Q8_1, q8_1, NULL),
    [EL_TYPE_Q2_K] = QUANT("Q2_K", QK_K, sizeof(block_q2_K), EL_TYPE_Q8_K, q2_K, el_vec_dot_q2_K_q8_K_ref),
    [EL_TYPE_Q3_K] = QUANT("Q3_K", QK_K, sizeof(block_q3_K), EL_TYPE_Q8_K, q3_K, el_vec_dot_q3_K_q8_K_ref),
    [EL_TYPE_Q4_K] = QUANT("Q4_K", QK_K, sizeof(block_q4_K), EL_TYPE_Q8_K, q4_K, el_vec_dot_q4_K_q8_K_ref),
    [EL_TYPE_Q5_K] = QUANT("Q5_K", QK_K, sizeof(block_q5_K), EL_TYPE_Q8_K, q5_K, el_vec_dot_q5_K_q8_K_ref),
    [EL_TYPE_Q6_K] = QUANT("Q6_K", QK_K, sizeof(block_q6_K), EL_TYPE_Q8_K, q6_K, el_vec_dot_q6_K_q8_K_ref),
    [EL_TYPE_Q8_K] = QUANT("Q8_K", QK_K, sizeof(block_q8_K), EL_TYPE_Q8_K, q8_K, el_vec_dot_q8_K_q8_K_ref),
    [16] = UNSUPPORTED("IQ2_XXS", QK_K, 66),
    [17] = UNSUPPORTED("IQ2_XS", QK_K, 74),
    [18] = UNSUPPORTED("IQ3_XXS", QK_K, 98),
    [19] = UNSUPPORTED("IQ1_S", QK_K, 50),
    [20] = UNSUPPORTED("IQ4_NL", 32, 18),
    [21] = UNSUPPORTED("IQ3_S", QK_K, 110),
    [22] = UNSUPPORTED("IQ2_S", QK_K, 82),
    [23] = UNSUPPORTED("IQ4_XS", QK_K, 136),
    [EL_TYPE_I8] = {.name = "I8", .block_size = 1, .type_size = 1},
    [EL_TYPE_I16] = {.name = "I16", .block_size = 1, .type_size = 2},
    [EL_TYPE_I32] = {.name = "I32", .block_size = 1, .type_size = 4},
    [EL_TYPE_I64] = {.name = "I64", .block_size = 1, .type_size = 8},
    [EL_TYPE_F64] = {.name = "F64", .block_size = 1, .type_size = 8},
    [29] = UNSUPPORTED("IQ1_M", QK_K, 56),
    [EL_TYPE_BF16] = PLAIN("BF16", 2, bf16),
    [34] = UNSUPPORTED("TQ1_0", QK_K, 54),
    [35] = UNSUPPORTED("TQ2_0", QK_K, 66),
};

/* In-memory layouts: geometry per 32-element block as the format they regroup. */
static const el_type_traits TRAITS_Q5_0_R4 = {.name = "Q5_0_R4", .block_size = QK5_0, .type_size = sizeof(block_q5_0),
                                              .is_quantized = true, .vec_dot_type = EL_TYPE_Q8_0};

static const el_type_traits TRAITS_Q4_K_T = {.name = "Q4_K_T", .block_size = QK_K, .type_size = sizeof(block_q4_K),
                                             .is_quantized = true, .vec_dot_type = EL_TYPE_Q8_K};

const el_type_traits *el_type_get_traits(uint32_t type) {
    if (type == EL_TYPE_Q5_0_R4) return &TRAITS_Q5_0_R4;
    if (type == EL_TYPE_Q4_K_T) return &TRAITS_Q4_K_T;
    if (type >= EL_TYPE_COUNT || TRAITS[type].name == NULL) return NULL;
    return &TRAITS[type];
}

bool el_type_valid(uint32_t type) { return type < EL_TYPE_COUNT && el_type_get_traits(type) != NULL; }

const char *el_type_name(uint32_t type) {
    const el_type_traits *t = el_type_get_traits(type);
    return t ? t->name : "?";
}

size_t el_type_row_size(el_type type, int64_t n) {
    const el_type_traits *t = el_type_get_traits(type);
    if (!t || n < 0 || n % t->block_size) return 0;
    uint64_t blocks = (uint64_t)n / t->block_size;
    if (blocks > SIZE_MAX / t->type_size) return 0;
    return (size_t)(blocks * t->type_size);
}

/* ---- half and bfloat16 conversions (exact; rounding to nearest even on the way down) ---- */

float el_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | (mant << 13); /* inf / nan (payload kept) */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { /* subnormal half: renormalise */
        int e = 113;
        while (!(mant & 0x400)) {
            mant <<= 1;
            e--;
        }
        bits = sign | ((uint32_t)e << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t el_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff)); /* quiet nan */
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* rounds past 65504: inf */
    if (ax < 0x38800000) {                                  /* below 2^-14: half subnormal or zero */
        if (ax <= 0x33000000) return sign;                  /* <= 2^-25 rounds to 0 (tie to even) */
        uint32_t mant = (ax & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(ax >> 23); /* units of 2^-24 */
        uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax + 0xfff + ((ax >> 13) & 1); /* round to nearest even at bit 13 */
    return (uint16_t)(sign | ((r - 0x38000000) >> 13));
}

float el_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* As ggml: nan becomes a quiet nan, everything else rounds to nearest even. */
uint16_t el_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 64);
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}
