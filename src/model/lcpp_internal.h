/* Pieces the llama.cpp-compatible files share (see lcpp_numerics.h). */
#ifndef EL_MODEL_LCPP_INTERNAL_H
#define EL_MODEL_LCPP_INTERNAL_H

/* The sum of 8 float lanes as ggml's hsum_float_8 and tinyBLAS's hsum compute it: high
 * half plus low half, then (l0 + l2) + (l1 + l3). */
static inline float el_lcpp_hsum8(const float v[8]) {
    float l[4];
    for (int i = 0; i < 4; i++) l[i] = v[i + 4] + v[i];
    const float a = l[0] + l[2], b = l[1] + l[3];
    return a + b;
}

#endif
