/* The x86 micro-kernels and one-token gemvs of the blocked matmul, written once over a
 * few integer steps and X86_NAME (the name's suffix): gemm_avx2.c includes it with AVX2's
 * (vpmaddubsw and vpmaddwd, then an add), gemm_avx512.c with AVX-512 VNNI's and
 * gemm_avxvnni.c with AVX-VNNI's (vpdpbusd, vpdpwssd: the multiply, the widening and the
 * add in one instruction, on the same 256-bit vectors; X86_VNNI 1 and 2: EVEX and VEX
 * encodings of the same instructions). Layouts and contract: kernels/gemm.h; the panels
 * and activations are the same for all.
 *
 * The steps give the same exact int32 lane sums either way (no step can overflow: see
 * q4_lanes), and every float step is written once below, so both variants, and the
 * one-token gemvs of gemm_avx2.c, agree bit for bit.
 * No include guard: meant to be included once per kernel variant. */
#if !defined(X86_NAME) || !defined(X86_VNNI)
#error "define X86_NAME and X86_VNNI (0 or 1) before including gemm_tiles_impl.h"
#endif

#include <immintrin.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/x86/gemm_x86.h"
#include "quant/blocks.h"

#if X86_VNNI == 2
#define X86_DPBUSD _mm256_dpbusd_avx_epi32
#define X86_DPWSSD _mm256_dpwssd_avx_epi32
#elif X86_VNNI == 1
#define X86_DPBUSD _mm256_dpbusd_epi32
#define X86_DPWSSD _mm256_dpwssd_epi32
#endif

#if X86_VNNI
/* acc + per int32 lane the 4 products of its bytes, u unsigned and s signed. */
static inline __m256i dot4_u8s8(__m256i acc, __m256i u, __m256i s) { return X86_DPBUSD(acc, u, s); }

/* acc + per int32 lane the 2 products of its int16 halves. */
static inline __m256i dot2_s16(__m256i acc, __m256i a, __m256i b) { return X86_DPWSSD(acc, a, b); }

/* A q4 panel block's int32 lanes against 4 broadcast activation vectors, less corr. */
static inline __m256i q4_lanes(__m256i x0, __m256i x1, __m256i x2, __m256i x3, const int8_t q[4][32], __m256i corr) {
    __m256i s = _mm256_sub_epi32(_mm256_setzero_si256(), corr);
    s = X86_DPBUSD(s, x0, _mm256_load_si256((const __m256i *)q[0]));
    s = X86_DPBUSD(s, x1, _mm256_load_si256((const __m256i *)q[1]));
    s = X86_DPBUSD(s, x2, _mm256_load_si256((const __m256i *)q[2]));
    return X86_DPBUSD(s, x3, _mm256_load_si256((const __m256i *)q[3]));
}

/* Group sums of the group-transposed K kernel (el_panel_kt): int32 lanes, then times
 * the scales. */
static inline __m256i gsum_add(__m256i acc, __m256i u, __m256i s) { return X86_DPBUSD(acc, u, s); }
static inline __m256i gsum_scale(__m256i acc, const int16_t sc16[16], const int32_t sc32[8]) {
    (void)sc16;
    return _mm256_mullo_epi32(acc, _mm256_loadu_si256((const __m256i *)sc32));
}
/* The same with the 8 scales as the low bytes of sc (the one-token kernel's form). */
static inline __m256i gsum_scale_u8(__m256i acc, __m128i sc) { return _mm256_mullo_epi32(acc, _mm256_cvtepu8_epi32(sc)); }
#else
static inline __m256i dot4_u8s8(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

static inline __m256i dot2_s16(__m256i acc, __m256i a, __m256i b) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}

/* int16 pair sums are at most 2 * 255 * 16 = 8160 in magnitude, so the 4 vectors' add up
 * exactly in int16 (32640) before one widening step. */
static inline __m256i q4_lanes(__m256i x0, __m256i x1, __m256i x2, __m256i x3, const int8_t q[4][32], __m256i corr) {
    const __m256i s16 =
        _mm256_add_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(x0, _mm256_load_si256((const __m256i *)q[0])),
                                          _mm256_maddubs_epi16(x1, _mm256_load_si256((const __m256i *)q[1]))),
                         _mm256_add_epi16(_mm256_maddubs_epi16(x2, _mm256_load_si256((const __m256i *)q[2])),
                                          _mm256_maddubs_epi16(x3, _mm256_load_si256((const __m256i *)q[3]))));
    return _mm256_sub_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)), corr);
}

/* int16 lanes: 8 steps of 2 products each, at most 16 * 15 * 128 = 30720 (el_panel_kt),
 * then one vpmaddwd with the scales in pairs gives vpmulld's int32 lanes exactly. */
static inline __m256i gsum_add(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi16(acc, _mm256_maddubs_epi16(u, s));
}
static inline __m256i gsum_scale(__m256i acc, const int16_t sc16[16], const int32_t sc32[8]) {
    (void)sc32;
    return _mm256_madd_epi16(acc, _mm256_loadu_si256((const __m256i *)sc16));
}
static inline __m256i gsum_scale_u8(__m256i acc, __m128i sc) {
    return _mm256_madd_epi16(acc, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(sc, sc)));
}
#endif

#define RM EL_GEMM_RM
#define TN EL_GEMM_TN
#define PASS 2 /* tokens per pass of the k kernels (their register budget) */
#ifndef Q4_PASS
#define Q4_PASS 4 /* tokens per pass of the q4 kernel: with int16 sums all TN fit in registers */
#endif

static inline float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

_Static_assert(RM == 4, "the row reductions below put 4 rows in one vector");
_Static_assert(TN % PASS == 0, "the q4 and k kernels go PASS tokens at a time");

/* vphaddd's result, [a0+a1 a2+a3 b0+b1 b2+b3 | a4+a5 a6+a7 b4+b5 b6+b7], from two
 * shuffles and an add: Zen 3 runs vphaddd as 3 micro-ops, one per 2 cycles, on a pipe
 * that vpmaddubsw needs (llvm-mca: the group-transposed Q4_K kernel's 8 vphaddd per
 * super-block held it 20 of 60 cycles); shuffles run on two others. Measured from L1,
 * that kernel: 138 -> 130 cycles per super-block of 4 tokens x 4 rows. */
static inline __m256i hadd_i32(__m256i a, __m256i b) {
    const __m256 fa = _mm256_castsi256_ps(a), fb = _mm256_castsi256_ps(b);
    return _mm256_add_epi32(_mm256_castps_si256(_mm256_shuffle_ps(fa, fb, _MM_SHUFFLE(2, 0, 2, 0))),
                            _mm256_castps_si256(_mm256_shuffle_ps(fa, fb, _MM_SHUFFLE(3, 1, 3, 1))));
}

/* Sum the 8 int32 lanes of each of d[0..3] down to one vector whose lanes are
 * [r0 r1 r2 r3 | r0 r1 r2 r3] (low half: lanes 0-3 of each input, high: lanes 4-7).
 * One float conversion and fma then serve four rows. */
static inline __m256i reduce_rows4(const __m256i d[4]) {
    return _mm256_hadd_epi32(_mm256_hadd_epi32(d[0], d[1]), _mm256_hadd_epi32(d[2], d[3]));
}

/* The same sums through hadd_i32: for kernels whose shuffle pipes have room and whose
 * multiply pipe has none (the group-transposed K kernel; the pair-summed one, which
 * regroups its activations on the shuffle pipes, measured 2% slower this way). */
static inline __m256i reduce_rows4_shuffled(const __m256i d[4]) {
    return hadd_i32(hadd_i32(d[0], d[1]), hadd_i32(d[2], d[3]));
}

/* [r0..r3 | r0..r3] -> [r0..r3]: whole-row sums. */
static inline __m128i sum_halves(__m256i v) {
    return _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

/* Broadcast activation quants 8k..8k+7 to the 4 row groups of an interleaved vector. */
static inline __m256i bcast8(const int8_t *x) {
    int64_t v;
    memcpy(&v, x, sizeof v);
    return _mm256_set1_epi64x(v);
}

/* acc lanes [r0 r0 r1 r1 r2 r2 r3 r3] -> out[r]. */
static inline void store_pairs4(__m256 acc, float out[RM]) {
    float v[8];
    _mm256_storeu_ps(v, acc);
    for (int r = 0; r < RM; r++) out[r] = v[2 * r] + v[2 * r + 1];
}

/* always_inline: each call site gets its own copy with np a constant (no per-token branch in the loop). */
#define EL_KERNEL_INLINE static inline __attribute__((always_inline))

/* A token's block against a Q8_0 panel block: |w| * sign(x, w), 4 products per int32
 * lane (dot4_u8s8); the 4 interleaved vectors give each row's sum in 2 lanes. */
static inline __m256i q8_block_lanes(const el_panel_q8 *p, const int8_t *q) {
    __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        const __m256i sx = _mm256_sign_epi8(bcast8(q + 8 * k), _mm256_load_si256((const __m256i *)p->q[k]));
        s = dot4_u8s8(s, _mm256_load_si256((const __m256i *)p->a[k]), sx);
    }
    return s;
}

/* The same for Q4_0/Q5_0 panels (|w| <= 16): (x + 128) * w cannot saturate vpmaddubsw,
 * so the activations (stored + 128) are the unsigned operand and no sign step is needed;
 * the 128 * sum(w) this adds is taken off lane by lane with the panel's corr. */
static inline __m256i q4_block_lanes(const el_panel_q4 *p, const int8_t *q) {
    return q4_lanes(bcast8(q), bcast8(q + 8), bcast8(q + 16), bcast8(q + 24), p->q,
                    _mm256_load_si256((const __m256i *)p->corr));
}

/* np tokens against one panel: per token and block the panel's lanes, then one
 * conversion and fma with dw*dx serve all 4 rows. */
#define GEMM_TILE(name, panel_t, lanes)                                                                      \
    EL_KERNEL_INLINE void name(const panel_t *p, int64_t nb, const void *const xs[], const int np, float out[][RM]) { \
        const block_q8_0 *x[TN];                                                                             \
        for (int t = 0; t < TN; t++) x[t] = xs[t < np ? t : 0];                                              \
        __m256 acc[TN];                                                                                      \
        _Pragma("GCC unroll 16") for (int t = 0; t < np; t++) acc[t] = _mm256_setzero_ps();                   \
        for (int64_t b = 0; b < nb; b++) {                                                                   \
            const panel_t *pb = p + b;                                                                       \
            const __m256 d2 = _mm256_load_ps(pb->d2);                                                        \
            _Pragma("GCC unroll 16") for (int t = 0; t < np; t++) {                                          \
                const __m256i s = lanes(pb, x[t][b].qs);                                                     \
                const __m256 scale = _mm256_mul_ps(d2, _mm256_set1_ps(f16_to_f32(x[t][b].d)));               \
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[t]);                              \
            }                                                                                                \
        }                                                                                                    \
        _Pragma("GCC unroll 16") for (int t = 0; t < np; t++) store_pairs4(acc[t], out[t]);                  \
    }

GEMM_TILE(gemm_q8_tile, el_panel_q8, q8_block_lanes)
GEMM_TILE(gemm_q4_tile, el_panel_q4, q4_block_lanes)

/* Several tokens: all TN at once (padding costs less than a narrower tile); one token
 * (decoding): a 1-token tile with the same per-token arithmetic, so a token's result
 * never depends on how tokens were batched. */
void X86_NAME(el_gemm_q8)(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    if (nt == 1) gemm_q8_tile(panel, nb, xs, 1, out);
    else gemm_q8_tile(panel, nb, xs, TN, out);
}

/* Several tokens: all TN at once (xs is padded; as the q8 kernel); one token alone. The
 * per-token arithmetic is the same either way. */
_Static_assert(Q4_PASS == TN, "the q4 kernel does all TN tokens in one pass");
void X86_NAME(el_gemm_q4)(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    if (nt == 1) gemm_q4_tile(panel, nb, xs, 1, out);
    else gemm_q4_tile(panel, nb, xs, Q4_PASS, out);
}

/* Integer sums of the q4 two-panel kernel, one step k (8 activations x 4 rows) at a time:
 * AVX2 sums vpmaddubsw's int16 pair sums (exact: see q4_lanes), widens once and then takes
 * off the correction; VNNI starts from minus the correction and adds in int32 as it goes.
 * The empty asm keeps AVX2's sum a running one: gcc otherwise reassociates the adds into
 * trees over all 4 steps and spills the products (as gemm_kt_pass). */
#if X86_VNNI
static inline __m256i q4_sum_first(__m256i x, __m256i q, __m256i neg_corr) { return X86_DPBUSD(neg_corr, x, q); }
static inline __m256i q4_sum_step(__m256i s, __m256i x, __m256i q) { return X86_DPBUSD(s, x, q); }
static inline __m256i q4_sum_lanes(__m256i s, __m256i corr) {
    (void)corr;
    return s;
}
#else
static inline __m256i q4_sum_first(__m256i x, __m256i q, __m256i neg_corr) {
    (void)neg_corr;
    __m256i s = _mm256_maddubs_epi16(x, q);
    __asm__("" : "+x"(s));
    return s;
}
static inline __m256i q4_sum_step(__m256i s, __m256i x, __m256i q) {
    s = _mm256_add_epi16(s, _mm256_maddubs_epi16(x, q));
    __asm__("" : "+x"(s));
    return s;
}
static inline __m256i q4_sum_lanes(__m256i s, __m256i corr) {
    return _mm256_sub_epi32(_mm256_madd_epi16(s, _mm256_set1_epi16(1)), corr);
}
#endif

/* The two-panel kernels (el_gemm_kernel2_fn): 2 panels (8 rows) x TN tokens, activation
 * scales as floats (one broadcast load, no f16 conversion in the loop). Per row and token
 * the operations of the one-panel kernels, in their order (int16 sums are exact, so their
 * order is free), the float steps written once. Step k's activations of all TN tokens are
 * held in registers while both panels' vector k passes them, so each weight vector is
 * loaded once per block, not once per token: Zen 3 issues two vector loads a cycle, and
 * the token-outer order (70 loads per q4 block: weights, corrections and scales again
 * for every token) bound the q4 kernel there (llvm-mca: load pipes busy 35 of 37 cycles;
 * measured from L1, 37.3 -> 34.2 cycles per block of 4 tokens x 8 rows). */

/* With 16 vector registers the float accumulators live in memory, loaded and stored once
 * per block (in registers they would crowd out the integer sums): the empty asm says acc
 * may have changed, so gcc keeps it there. AVX-512's 32 registers hold them. */
#if X86_VNNI == 1
#define two_panel_acc_in_memory(acc) ((void)0)
#else
#define two_panel_acc_in_memory(acc) __asm__("" : "+m"(acc))
#endif

/* A Q8_0 step: dot4_u8s8, kept a running sum on AVX2 (as q4_sum_step). */
static inline __m256i q8_sum_step(__m256i s, __m256i a, __m256i sx) {
    s = dot4_u8s8(s, a, sx);
#if !X86_VNNI
    __asm__("" : "+x"(s));
#endif
    return s;
}

/* Step k of one panel for all TN tokens (xk: their step-k activations): s[t] += the
 * panel's vector k against xk[t]; and the int32 lanes of a finished sum. */
EL_KERNEL_INLINE void q4_panel_step(const el_panel_q4 *p, int k, const __m256i xk[TN], __m256i s[TN]) {
    const __m256i q = _mm256_load_si256((const __m256i *)p->q[k]);
    const __m256i neg_corr = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_load_si256((const __m256i *)p->corr));
#pragma GCC unroll 16
    for (int t = 0; t < TN; t++) s[t] = k ? q4_sum_step(s[t], xk[t], q) : q4_sum_first(xk[t], q, neg_corr);
}
static inline __m256i q4_panel_lanes(const el_panel_q4 *p, __m256i s) {
    return q4_sum_lanes(s, _mm256_load_si256((const __m256i *)p->corr));
}

/* Q8_0 panels: |w| * sign(x, w) (q8_block_lanes' steps), summed in int32. */
EL_KERNEL_INLINE void q8_panel_step(const el_panel_q8 *p, int k, const __m256i xk[TN], __m256i s[TN]) {
    const __m256i a = _mm256_load_si256((const __m256i *)p->a[k]);
    const __m256i q = _mm256_load_si256((const __m256i *)p->q[k]);
#pragma GCC unroll 16
    for (int t = 0; t < TN; t++) s[t] = q8_sum_step(k ? s[t] : _mm256_setzero_si256(), a, _mm256_sign_epi8(xk[t], q));
}
static inline __m256i q8_panel_lanes(const el_panel_q8 *p, __m256i s) {
    (void)p;
    return s;
}

#define TWO_PANEL_KERNEL(name, panel_t, fam)                                                                 \
    void X86_NAME(name)(const void *panel0, const void *panel1, int64_t nb, const void *const xs[TN],        \
                        const float *const dx[TN], float out[TN][2 * RM]) {                                 \
        const panel_t *p0 = panel0, *p1 = panel1;                                                            \
        const block_q8_0 *x[TN];                                                                             \
        for (int t = 0; t < TN; t++) x[t] = xs[t];                                                           \
        _Alignas(32) float acc[2][TN][8] = {{{0}}};                                                          \
        for (int64_t b = 0; b < nb; b++) {                                                                   \
            const panel_t *a = p0 + b, *c = p1 + b;                                                          \
            __m256i s0[TN], s1[TN];                                                                          \
            _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {                                            \
                __m256i xk[TN];                                                                              \
                _Pragma("GCC unroll 16") for (int t = 0; t < TN; t++) xk[t] = bcast8(x[t][b].qs + 8 * k);     \
                fam##_panel_step(a, k, xk, s0);                                                              \
                fam##_panel_step(c, k, xk, s1);                                                              \
            }                                                                                                \
            two_panel_acc_in_memory(acc);                                                                    \
            const __m256 da = _mm256_load_ps(a->d2), dc = _mm256_load_ps(c->d2);                             \
            _Pragma("GCC unroll 16") for (int t = 0; t < TN; t++) {                                          \
                const __m256 d = _mm256_broadcast_ss(&dx[t][b]);                                             \
                const __m256 fa = _mm256_cvtepi32_ps(fam##_panel_lanes(a, s0[t]));                           \
                const __m256 fc = _mm256_cvtepi32_ps(fam##_panel_lanes(c, s1[t]));                           \
                _mm256_store_ps(acc[0][t], _mm256_fmadd_ps(fa, _mm256_mul_ps(da, d), _mm256_load_ps(acc[0][t]))); \
                _mm256_store_ps(acc[1][t], _mm256_fmadd_ps(fc, _mm256_mul_ps(dc, d), _mm256_load_ps(acc[1][t]))); \
            }                                                                                                \
        }                                                                                                    \
        _Pragma("GCC unroll 16") for (int t = 0; t < TN; t++) {                                              \
            store_pairs4(_mm256_load_ps(acc[0][t]), out[t]);                                                 \
            store_pairs4(_mm256_load_ps(acc[1][t]), out[t] + RM);                                           \
        }                                                                                                    \
    }

TWO_PANEL_KERNEL(el_gemm_q4x2, el_panel_q4, q4)
/* Q8_0 in this order: from L1, 55.4 -> 52.6 cycles per block; TinyLlama-shaped Q8_0 pp512
 * 52.5 -> 54.6 tok/s. */
TWO_PANEL_KERNEL(el_gemm_q8x2, el_panel_q8, q8)

/* k family: per super-block, integer sums of scale * (q * x) in int32 lanes (three
 * instructions per 32 multiply-adds); then per token each row's lanes are summed
 * exactly, the bias from the bsums joins in integers (int_bias) or as a second float
 * term, and one conversion and fma serve the 4 rows. */
EL_KERNEL_INLINE void gemm_k_pass(const el_panel_k *p, int64_t nb, const void *const xs[], const int np,
                               float out[][RM], const int int_bias) {
    const block_q8_K *x[PASS];
    for (int t = 0; t < PASS; t++) x[t] = xs[t < np ? t : 0]; /* all set: keeps -Wmaybe-uninitialized quiet */
    __m128 acc[PASS]; /* rows 0..3 */
#pragma GCC unroll 16
    for (int t = 0; t < np; t++) acc[t] = _mm_setzero_ps();

    for (int64_t b = 0; b < nb; b++) {
        const el_panel_k *pb = p + b;
        __m256i sumi[PASS][RM];
#pragma GCC unroll 16
        for (int t = 0; t < PASS; t++)
#pragma GCC unroll 16
            for (int r = 0; r < RM; r++) sumi[t][r] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
#pragma GCC unroll 16
            for (int r = 0; r < RM; r++) {
                const __m256i w = _mm256_load_si256((const __m256i *)(pb->q[r] + 32 * j));
                const __m256i sc = _mm256_load_si256((const __m256i *)pb->sc[r][j]);
#pragma GCC unroll 16
                for (int t = 0; t < np; t++) {
                    const __m256i xq = _mm256_loadu_si256((const __m256i *)(x[t][b].qs + 32 * j));
                    sumi[t][r] = dot2_s16(sumi[t][r], _mm256_maddubs_epi16(w, xq), sc);
                }
            }
        }
        const __m128 da = _mm_load_ps(pb->da), db = _mm_load_ps(pb->db);
#pragma GCC unroll 16
        for (int t = 0; t < np; t++) {
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][b].bsums);
            __m256i bias[RM];
#pragma GCC unroll 16
            for (int r = 0; r < RM; r++)
                bias[r] = _mm256_madd_epi16(_mm256_load_si256((const __m256i *)pb->m[r]), bs);
            /* Whole-row integer sums (exact) before any rounding: the lanes of sumi and
             * bias cover different elements, and their offsets cancel only in the total.
             * With an integer bias the two add up lane by lane first (exact: one total). */
            const __m128 dx = _mm_set1_ps(x[t][b].d);
            if (int_bias) {
#pragma GCC unroll 16
                for (int r = 0; r < RM; r++) bias[r] = _mm256_add_epi32(sumi[t][r], bias[r]);
                const __m128i sm = sum_halves(reduce_rows4(bias));
                acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(sm), _mm_mul_ps(da, dx), acc[t]);
            } else {
                const __m128i s = sum_halves(reduce_rows4(sumi[t])), m = sum_halves(reduce_rows4(bias));
                acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(s), _mm_mul_ps(da, dx), acc[t]);
                acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(m), _mm_mul_ps(db, dx), acc[t]);
            }
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < np; t++) _mm_storeu_ps(out[t], acc[t]);
}

void X86_NAME(el_gemm_k_fbias)(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    int t = 0;
    for (; t + PASS <= nt; t += PASS) gemm_k_pass(panel, nb, xs + t, PASS, out + t, 0);
    if (t < nt) gemm_k_pass(panel, nb, xs + t, 1, out + t, 0);
}

void X86_NAME(el_gemm_k_ibias)(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    int t = 0;
    for (; t + PASS <= nt; t += PASS) gemm_k_pass(panel, nb, xs + t, PASS, out + t, 1);
    if (t < nt) gemm_k_pass(panel, nb, xs + t, 1, out + t, 1);
}

/* The end of a super-block in the pair-summed and group-transposed K kernels: row
 * totals sumi[t][r] (int32 lanes) plus the bias from the activations' bsums, both
 * tokens' in one vector [t0 r0-3 | t1 r0-3], then one conversion, scale and fma per
 * term for the two (lane by lane the float steps of gemm_k_pass). m: el_panel_kp's
 * layout for int_bias / float bias. */
EL_KERNEL_INLINE __m256 kpair_finish(__m256 acc2, const int16_t (*m)[16], const float *da_, const float *db_,
                                     const block_q8_K *x[PASS], int64_t b, __m256i sumi[PASS][RM],
                                     const int np, const int int_bias, const int shuffled) {
    __m256i tot[PASS], mtot[PASS];
#pragma GCC unroll 16
    for (int t = 0; t < np; t++) {
        const __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][b].bsums);
        if (int_bias) {
            __m256i bias[RM];
#pragma GCC unroll 16
            for (int r = 0; r < RM; r++)
                bias[r] = _mm256_add_epi32(sumi[t][r],
                                           _mm256_madd_epi16(_mm256_load_si256((const __m256i *)m[r]), bs));
            tot[t] = shuffled ? reduce_rows4_shuffled(bias) : reduce_rows4(bias);
        } else {
            /* mins per 32 elements: the bsums in pairs (exact in int16: at most 4096), two
             * rows per vpmaddwd (el_panel_kp's fbias layout of m) */
            const __m256i bsp = _mm256_hadd_epi16(bs, bs);
            const __m256i b01 = _mm256_madd_epi16(_mm256_load_si256((const __m256i *)m[0]), bsp);
            const __m256i b23 = _mm256_madd_epi16(_mm256_load_si256((const __m256i *)m[1]), bsp);
            tot[t] = shuffled ? reduce_rows4_shuffled(sumi[t]) : reduce_rows4(sumi[t]);
            mtot[t] = shuffled ? hadd_i32(b01, b23) : _mm256_hadd_epi32(b01, b23);
        }
    }
    const __m256 da = _mm256_broadcast_ps((const __m128 *)da_), db = _mm256_broadcast_ps((const __m128 *)db_);
    const __m256 dx = np == 1 ? _mm256_set1_ps(x[0][b].d)
                              : _mm256_set_m128(_mm_set1_ps(x[1][b].d), _mm_set1_ps(x[0][b].d));
    const int o = np == 1 ? 0 : 1; /* np = 1: the high half repeats token 0 (not stored) */
    const __m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(tot[0], tot[o], 0x20),
                                       _mm256_permute2x128_si256(tot[0], tot[o], 0x31));
    acc2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(da, dx), acc2);
    if (!int_bias) {
        const __m256i mt = _mm256_add_epi32(_mm256_permute2x128_si256(mtot[0], mtot[o], 0x20),
                                            _mm256_permute2x128_si256(mtot[0], mtot[o], 0x31));
        acc2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mt), _mm256_mul_ps(db, dx), acc2);
    }
    return acc2;
}

/* Pair-summed K kernel (el_panel_kp): per 64-element chunk and token, the activation's
 * two halves are regrouped once (vpunpck{l,h}qdq, shuffle ports) for the 4 rows; per
 * row and token two vpmaddubsw, one int16 add and one vpmaddwd with the scales. The
 * per-super-block row totals are gemm_k_pass's exact integers, and the float steps its. */
EL_KERNEL_INLINE void gemm_kp_pass(const el_panel_kp *p, int64_t nb, const void *const xs[], const int np,
                                   float out[][RM], const int int_bias) {
    const block_q8_K *x[PASS];
    for (int t = 0; t < PASS; t++) x[t] = xs[t < np ? t : 0];
    _Static_assert(PASS == 2, "the float steps below hold two tokens in one vector");
    __m256 acc2 = _mm256_setzero_ps(); /* [t0 rows 0-3 | t1 rows 0-3] */

    for (int64_t b = 0; b < nb; b++) {
        const el_panel_kp *pb = p + b;
        __m256i sumi[PASS][RM];
#pragma GCC unroll 16
        for (int t = 0; t < PASS; t++)
#pragma GCC unroll 16
            for (int r = 0; r < RM; r++) sumi[t][r] = _mm256_setzero_si256();
        /* Registers: 8 accumulators, 4 regrouped activation vectors, 2 weight vectors and
         * 2 temporaries (the scales are a memory operand). */
        for (int c = 0; c < 4; c++) {
            __m256i xa[PASS], xb[PASS];
#pragma GCC unroll 16
            for (int t = 0; t < np; t++) {
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)(x[t][b].qs + 64 * c));
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)(x[t][b].qs + 64 * c + 32));
                xa[t] = _mm256_unpacklo_epi64(x0, x1);
                xb[t] = _mm256_unpackhi_epi64(x0, x1);
            }
#pragma GCC unroll 4
            for (int r = 0; r < RM; r++) {
                __m256i wa = _mm256_load_si256((const __m256i *)pb->q[r][c]);
                __m256i wb = _mm256_load_si256((const __m256i *)(pb->q[r][c] + 32));
                const __m256i sc = _mm256_load_si256((const __m256i *)pb->sc[r][c]);
                /* Pin the weights in registers: gcc otherwise loads them again for the
                 * second token, and the loop is then bound by loads, not multiplies. */
                __asm__("" : "+x"(wa), "+x"(wb));
#pragma GCC unroll 16
                for (int t = 0; t < np; t++) {
                    const __m256i s16 =
                        _mm256_add_epi16(_mm256_maddubs_epi16(wa, xa[t]), _mm256_maddubs_epi16(wb, xb[t]));
                    sumi[t][r] = dot2_s16(sumi[t][r], s16, sc);
                }
            }
        }
        acc2 = kpair_finish(acc2, pb->m, pb->da, pb->db, x, b, sumi, np, int_bias, 0);
    }
    _mm_storeu_ps(out[0], _mm256_castps256_ps128(acc2));
    if (np > 1) _mm_storeu_ps(out[1], _mm256_extractf128_ps(acc2, 1));
}

void X86_NAME(el_gemm_kp_fbias)(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    int t = 0;
    for (; t + PASS <= nt; t += PASS) gemm_kp_pass(panel, nb, xs + t, PASS, out + t, 0);
    if (t < nt) gemm_kp_pass(panel, nb, xs + t, 1, out + t, 0);
}

void X86_NAME(el_gemm_kp_ibias)(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    int t = 0;
    for (; t + PASS <= nt; t += PASS) gemm_kp_pass(panel, nb, xs + t, PASS, out + t, 1);
    if (t < nt) gemm_kp_pass(panel, nb, xs + t, 1, out + t, 1);
}

/* Group-transposed K kernel (el_panel_kt, Q4_K), activations transposed alike: per
 * super-block, row and token 8 group-sum steps (vpmaddubsw + int16 add, or vpdpbusd)
 * and one scaling; the row totals are gemm_k_pass's exact integers, the float steps its. */
EL_KERNEL_INLINE void gemm_kt_pass(const el_panel_kt *p, int64_t nb, const void *const xs[], const int np,
                                   float out[][RM]) {
    const block_q8_K *x[PASS];
    for (int t = 0; t < PASS; t++) x[t] = xs[t < np ? t : 0];
    __m256 acc2 = _mm256_setzero_ps(); /* [t0 rows 0-3 | t1 rows 0-3] */

    for (int64_t b = 0; b < nb; b++) {
        const el_panel_kt *pb = p + b;
        /* Registers: 8 group-sum accumulators, 2 activation vectors, a weight vector. */
        __m256i g[PASS][RM];
#pragma GCC unroll 16
        for (int t = 0; t < PASS; t++)
#pragma GCC unroll 16
            for (int r = 0; r < RM; r++) g[t][r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) {
            __m256i xv[PASS];
#pragma GCC unroll 16
            for (int t = 0; t < np; t++) xv[t] = _mm256_loadu_si256((const __m256i *)(x[t][b].qs + 32 * v));
#pragma GCC unroll 4
            for (int r = 0; r < RM; r++) {
                __m256i w = _mm256_load_si256((const __m256i *)pb->q[r][v]);
                __asm__("" : "+x"(w)); /* one load for both tokens (as gemm_kp_pass) */
#pragma GCC unroll 16
                for (int t = 0; t < np; t++) {
                    g[t][r] = gsum_add(g[t][r], w, xv[t]);
                    /* Keep each sum a running one: gcc otherwise reassociates the integer
                     * adds into trees over all 8 steps and spills the products. */
                    __asm__("" : "+x"(g[t][r]));
                }
            }
        }
        __m256i sumi[PASS][RM];
#pragma GCC unroll 16
        for (int t = 0; t < np; t++)
#pragma GCC unroll 16
            for (int r = 0; r < RM; r++) sumi[t][r] = gsum_scale(g[t][r], pb->sc16[r], pb->sc32[r]);
        acc2 = kpair_finish(acc2, pb->m, pb->da, pb->db, x, b, sumi, np, 0, 1);
    }
    _mm_storeu_ps(out[0], _mm256_castps256_ps128(acc2));
    if (np > 1) _mm_storeu_ps(out[1], _mm256_extractf128_ps(acc2, 1));
}

void X86_NAME(el_gemm_kt_fbias)(const void *panel, int64_t nb, const void *const xs[TN], int nt, float out[TN][RM]) {
    int t = 0;
    for (; t + PASS <= nt; t += PASS) gemm_kt_pass(panel, nb, xs + t, PASS, out + t);
    if (t < nt) gemm_kt_pass(panel, nb, xs + t, 1, out + t);
}

/* ---- one token, straight from the weight blocks (decoding) ----
 * The same integer sums and the same float operations, in the same order, as the
 * kernels above on a packed panel with one token: a token's result never depends on
 * whether it was computed alone or in a batch (a cached prompt prefix followed by one
 * new token gives exactly what the whole prompt at once gave). */

/* One row's block against 32 signed activations: int32 lane l = elements 4l..4l+3 (exact). */
static inline __m256i lanes_q8_0(const block_q8_0 *b, __m256i x) {
    const __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
    return dot4_u8s8(_mm256_setzero_si256(), _mm256_abs_epi8(q), _mm256_sign_epi8(x, q));
}

/* Lane sums of 4 rows -> [a0 b0 a1 b1 | a2 b2 a3 b3], the kernels' lane order:
 * a = elements 8k..8k+3 (even lanes), b = elements 8k+4..8k+7 (odd lanes), k < 4. */
static inline __m256i pairs_rows4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    const __m256i t01 = _mm256_add_epi32(_mm256_unpacklo_epi64(p0, p1), _mm256_unpackhi_epi64(p0, p1));
    const __m256i t23 = _mm256_add_epi32(_mm256_unpacklo_epi64(p2, p3), _mm256_unpackhi_epi64(p2, p3));
    return _mm256_add_epi32(_mm256_permute2x128_si256(t01, t23, 0x20), _mm256_permute2x128_si256(t01, t23, 0x31));
}

/* Four f16 in the low 64 bits. (Put together in a general register instead, they made
 * the Q4_0 one-token kernel 9% faster from L3 but decoding from DRAM 2-3% slower.) */
static inline __m128i f16x4_bits(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
    return _mm_setr_epi16((short)a, (short)b, (short)c, (short)d, 0, 0, 0, 0);
}

/* [d0 d1 d2 d3] as floats. */
static inline __m128 f16x4(uint16_t a, uint16_t b, uint16_t c, uint16_t d) { return _mm_cvtph_ps(f16x4_bits(a, b, c, d)); }

/* [d0 d0 d1 d1 d2 d2 d3 d3] from the 4 rows' f16 scales. */
static inline __m256 scales_rows4(uint16_t d0, uint16_t d1, uint16_t d2, uint16_t d3) {
    const __m128i h = f16x4_bits(d0, d1, d2, d3);
    return _mm256_cvtph_ps(_mm_unpacklo_epi16(h, h));
}

/* The 4 rows in step, block by block: one activation load and one set of float steps
 * serve the 4 rows, and the lane sums never leave registers. Per block the integer lane
 * sums are those of the kernel (exact, however they are added up) and the float steps
 * are the kernel's for one token, in the same order.
 * Four streams in step are ones the hardware prefetcher follows badly, so the lines of
 * what comes next in memory (the next panel: a matrix's rows are adjacent) are fetched
 * PREFETCH_AHEAD bytes past this panel's end, at the pace this panel is read. Measured on
 * a 262144 x 640 Q8_0 matrix from DRAM, 1 thread: 11.1 GB/s rows one after another,
 * 6.8 in step without prefetch, 14.5 with it. Prefetches never fault; the address is
 * formed as an integer since it may lie past the matrix. */
#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 2048
#endif

/* Step i of that pace: the step_bytes at ahead + i * step_bytes, a line at a time (ahead:
 * PREFETCH_AHEAD past the end of what is being read; step_bytes: what one step reads). */
static inline void prefetch_ahead(uintptr_t ahead, int64_t i, size_t step_bytes) {
    const uintptr_t pf = ahead + (uintptr_t)i * step_bytes;
    for (size_t o = 0; o < step_bytes; o += 64) _mm_prefetch((const char *)(pf + o), _MM_HINT_T0);
}

/* The el_gemv_fn entry point, and the span one: n_panels panels of consecutive rows
 * (row stride w_row) whole (blocks 0..nb), outputs straight into y, with no call or
 * set-up per panel between them (el_gemv_span_fn; the same body, so the same bits). */
#define GEMV_ENTRIES(name)                                                                                   \
    void X86_NAME(name)(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv, float out[RM]) { \
        name##_one(rows, b0, nb, xv, out);                                                                   \
    }                                                                                                        \
    void X86_NAME(name##_span)(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *xv,    \
                               float *y) {                                                               \
        const uint8_t *p = w;                                                                                \
        for (int64_t i = 0; i < n_panels; i++, p += RM * w_row, y += RM) {                                   \
            const void *rows[RM] = {p, p + w_row, p + 2 * w_row, p + 3 * w_row};                             \
            name##_one(rows, 0, nb, xv, y);                                                                  \
        }                                                                                                    \
    }
#define GEMV_Q32(name, block_t, lanes, act_offset)                                                           \
    EL_KERNEL_INLINE void name##_one(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv,     \
                                     float out[RM]) {                                                        \
        const block_q8_0 *x = (const block_q8_0 *)xv; /* already at block b0 */                              \
        const block_t *w0 = (const block_t *)rows[0] + b0, *w1 = (const block_t *)rows[1] + b0;              \
        const block_t *w2 = (const block_t *)rows[2] + b0, *w3 = (const block_t *)rows[3] + b0;              \
        const uintptr_t ahead = (uintptr_t)rows[3] + (uintptr_t)(b0 + nb) * sizeof(block_t) + PREFETCH_AHEAD; \
        __m256 acc = _mm256_setzero_ps();                                                                    \
        for (int64_t b = 0; b < nb; b++) {                                                                   \
            prefetch_ahead(ahead, b, RM * sizeof(block_t));                                                  \
            __m256i xq = _mm256_loadu_si256((const __m256i *)x[b].qs);                                       \
            if (act_offset) xq = _mm256_xor_si256(xq, _mm256_set1_epi8((char)0x80)); /* back to signed */    \
            const __m256i s =                                                                                \
                pairs_rows4(lanes(&w0[b], xq), lanes(&w1[b], xq), lanes(&w2[b], xq), lanes(&w3[b], xq));     \
            const __m256 d2 = scales_rows4(w0[b].d, w1[b].d, w2[b].d, w3[b].d);                              \
            const __m256 scale = _mm256_mul_ps(d2, _mm256_set1_ps(f16_to_f32(x[b].d)));                      \
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc);                                        \
        }                                                                                                    \
        store_pairs4(acc, out);                                                                              \
    }                                                                                                        \
    GEMV_ENTRIES(name)

GEMV_Q32(el_gemv_q8_0, block_q8_0, lanes_q8_0, 0)
/* The same for activations stored + 128 (the VNNI builds run Q8_0 products on the q4
 * family's kernels: matmul.c, el_gemm_ops_get). */
GEMV_Q32(el_gemv_q8_0_off, block_q8_0, lanes_q8_0, 1)

/* Q4_0/Q5_0 (unsigned u = w + c, at most 31): two rows per vector. lo holds elements 0-15
 * of row a in its low half and of row b in its high half, hi elements 16-31 likewise, so
 * one 16-byte load per row and half the nibble steps serve 2 rows, against activations
 * whose halves are duplicated. maddubs pair sums are at most 2 * 31 * 128 = 7936, so lo's
 * and hi's add up exactly in int16 (int16 lane m then holds elements 2m, 2m+1, 2m+16,
 * 2m+17: one class, a or b, of the kernels' lane order), and one vpmaddwd widens both rows. */
static inline void nibbles_rows2(const uint8_t *qa, const uint8_t *qb, __m256i *lo, __m256i *hi) {
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qa)),
                                              _mm_loadu_si128((const __m128i *)qb), 1);
    const __m256i m = _mm256_set1_epi8(0x0F);
    *lo = _mm256_and_si256(v, m);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
}

static inline void u_rows2_q4_0(const block_q4_0 *a, const block_q4_0 *b, __m256i *lo, __m256i *hi) {
    nibbles_rows2(a->qs, b->qs, lo, hi);
}

/* Q5_0: the nibbles plus 16 where bit j of qh is set (element j). */
static inline void u_rows2_q5_0(const block_q5_0 *a, const block_q5_0 *b, __m256i *lo, __m256i *hi) {
    nibbles_rows2(a->qs, b->qs, lo, hi);
    uint32_t ha, hb;
    memcpy(&ha, a->qh, 4);
    memcpy(&hb, b->qh, 4);
    /* [ha hb] in each half: byte k of a half takes byte k / 8 (lo; hi: 2 + k / 8) of its
     * row's qh (row a: bytes 0-3, row b: 4-7), bit k % 8 */
    const __m256i qh = _mm256_set1_epi64x((long long)((uint64_t)ha | (uint64_t)hb << 32));
    const __m256i spread_lo = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4,
                                               4, 5, 5, 5, 5, 5, 5, 5, 5);
    const __m256i spread_hi = _mm256_add_epi8(spread_lo, _mm256_set1_epi8(2));
    const __m256i bitsel = _mm256_set1_epi64x((long long)0x8040201008040201ull), b16 = _mm256_set1_epi8(16);
    const __m256i sl = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, spread_lo), bitsel), bitsel);
    const __m256i sh = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, spread_hi), bitsel), bitsel);
    *lo = _mm256_or_si256(*lo, _mm256_and_si256(sl, b16));
    *hi = _mm256_or_si256(*hi, _mm256_and_si256(sh, b16));
}

/* int32 lanes [a b a b] of row a (low half) and row b (high half) from their u vectors. */
static inline __m256i lanes_rows2(__m256i lo, __m256i hi, __m256i xlo, __m256i xhi) {
#if X86_VNNI
    return X86_DPBUSD(X86_DPBUSD(_mm256_setzero_si256(), lo, xlo), hi, xhi);
#else
    const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
    return _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
#endif
}

/* c * (sum of x over class a, class b) as [a b a b | a b a b], from the signed quants. */
static inline __m256i class_sums(__m256i xq, int c) {
    const __m256i l = dot4_u8s8(_mm256_setzero_si256(), _mm256_set1_epi8((char)c), xq);
    const __m256i t = _mm256_add_epi32(l, _mm256_shuffle_epi32(l, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm256_add_epi32(t, _mm256_permute2x128_si256(t, t, 0x01));
}

#define GEMV_Q32X2(name, block_t, u_rows2, csum)                                                             \
    EL_KERNEL_INLINE void name##_one(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv,     \
                                     float out[RM]) {                                                        \
        const block_q8_0 *x = (const block_q8_0 *)xv; /* already at block b0 */                              \
        const block_t *w0 = (const block_t *)rows[0] + b0, *w1 = (const block_t *)rows[1] + b0;              \
        const block_t *w2 = (const block_t *)rows[2] + b0, *w3 = (const block_t *)rows[3] + b0;              \
        const uintptr_t ahead = (uintptr_t)rows[3] + (uintptr_t)(b0 + nb) * sizeof(block_t) + PREFETCH_AHEAD; \
        __m256 acc = _mm256_setzero_ps();                                                                    \
        for (int64_t b = 0; b < nb; b++) {                                                                   \
            prefetch_ahead(ahead, b, RM * sizeof(block_t));                                                  \
            const __m256i xq = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[b].qs),                \
                                                _mm256_set1_epi8((char)0x80));                               \
            const __m256i xlo = _mm256_permute4x64_epi64(xq, 0x44), xhi = _mm256_permute4x64_epi64(xq, 0xEE); \
            __m256i lo02, hi02, lo13, hi13;                                                                  \
            u_rows2(&w0[b], &w2[b], &lo02, &hi02);                                                           \
            u_rows2(&w1[b], &w3[b], &lo13, &hi13);                                                           \
            const __m256i l02 = lanes_rows2(lo02, hi02, xlo, xhi), l13 = lanes_rows2(lo13, hi13, xlo, xhi);   \
            /* [r0 | r2] and [r1 | r3] -> [r0 r1 | r2 r3], classes a and b summed over the halves */        \
            const __m256i s = _mm256_sub_epi32(                                                              \
                _mm256_add_epi32(_mm256_unpacklo_epi64(l02, l13), _mm256_unpackhi_epi64(l02, l13)),          \
                class_sums(xq, csum));                                                                       \
            const __m256 d2 = scales_rows4(w0[b].d, w1[b].d, w2[b].d, w3[b].d);                              \
            const __m256 scale = _mm256_mul_ps(d2, _mm256_set1_ps(f16_to_f32(x[b].d)));                      \
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc);                                        \
        }                                                                                                    \
        store_pairs4(acc, out);                                                                              \
    }                                                                                                        \
    GEMV_ENTRIES(name)

GEMV_Q32X2(el_gemv_q5_0, block_q5_0, u_rows2_q5_0, 16)

/* ---- Q5_0_R4 (quant/blocks.h): Q5_0 regrouped at load ---- */

/* The 5th bits of vector v (0-7) of a group, at bit 4 of each byte: bit v of every qh
 * byte moved to bit 4 (16-bit shifts move bits across bytes, but never into bit 4 of a
 * byte from its neighbour for shifts of at most 4), then masked. */
#define Q5R4_BITS(qh, v)                                                                             \
    _mm256_and_si256((v) < 4 ? _mm256_slli_epi16(qh, 4 - (v)) : (v) > 4 ? _mm256_srli_epi16(qh, (v) - 4) : (qh), \
                     _mm256_set1_epi8(16))

/* Block b of a group as the u vectors of u_rows2_q5_0 for pairs (0, 2) and (1, 3). */
#define Q5R4_U(g, qh, b, lo02, hi02, lo13, hi13)                                                      \
    do {                                                                                              \
        const __m256i m_ = _mm256_set1_epi8(0x0F);                                                    \
        const __m256i v02_ = _mm256_loadu_si256((const __m256i *)(g)->qs[b][0]);                      \
        const __m256i v13_ = _mm256_loadu_si256((const __m256i *)(g)->qs[b][1]);                      \
        lo02 = _mm256_or_si256(_mm256_and_si256(v02_, m_), Q5R4_BITS(qh, 4 * (b)));                   \
        hi02 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v02_, 4), m_), Q5R4_BITS(qh, 4 * (b) + 1)); \
        lo13 = _mm256_or_si256(_mm256_and_si256(v13_, m_), Q5R4_BITS(qh, 4 * (b) + 2));               \
        hi13 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v13_, 4), m_), Q5R4_BITS(qh, 4 * (b) + 3)); \
    } while (0)

/* Row r's 32 quants (u - 16) from the pair vectors: low halves row p, high halves row p + 2. */
static inline __m256i q5r4_row(__m256i lo, __m256i hi, int upper) {
    const __m256i u = upper ? _mm256_permute2x128_si256(lo, hi, 0x31) : _mm256_permute2x128_si256(lo, hi, 0x20);
    return _mm256_sub_epi8(u, _mm256_set1_epi8(16));
}

/* The activation side of GEMV_Q32X2's loop body (Q4_0, Q5_0_R4), made once per block for
 * all the panels of a call: the quants flipped back to signed with their halves duplicated, the class
 * sums of 16 * x, and the block scale as a float (exact). */
typedef struct u32_act {
    __m256i xlo, xhi, cs;
    float d;
} u32_act;

static inline void u32_prepare(const block_q8_0 *x, int64_t nb, int csum, u32_act *a) {
    for (int64_t b = 0; b < nb; b++) {
        const __m256i xq = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[b].qs), _mm256_set1_epi8((char)0x80));
        a[b].xlo = _mm256_permute4x64_epi64(xq, 0x44);
        a[b].xhi = _mm256_permute4x64_epi64(xq, 0xEE);
        a[b].cs = class_sums(xq, csum);
        a[b].d = f16_to_f32(x[b].d);
    }
}

/* One block from a group's u vectors: GEMV_Q32X2's integer lane sums and float steps,
 * so the same bits as el_gemv_q5_0_avx2 on the rows the group came from. */
static inline __m256 u32_block(const u32_act *a, __m256i lo02, __m256i hi02, __m256i lo13, __m256i hi13,
                                __m256 d2, __m256 acc) {
    const __m256i l02 = lanes_rows2(lo02, hi02, a->xlo, a->xhi), l13 = lanes_rows2(lo13, hi13, a->xlo, a->xhi);
    const __m256i s =
        _mm256_sub_epi32(_mm256_add_epi32(_mm256_unpacklo_epi64(l02, l13), _mm256_unpackhi_epi64(l02, l13)), a->cs);
    const __m256 scale = _mm256_mul_ps(d2, _mm256_set1_ps(a->d));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc);
}

/* u32_block for each of nt tokens (token t's activations at a + t * a_stride) into acc[t]:
 * the rows decoded once serve them all. */
static inline void u32_block_tokens(const u32_act *a, int nt, int64_t a_stride, __m256i lo02, __m256i hi02,
                                    __m256i lo13, __m256i hi13, __m256 d2, __m256 acc[]) {
    for (int t = 0; t < nt; t++) acc[t] = u32_block(a + t * a_stride, lo02, hi02, lo13, hi13, d2, acc[t]);
}

/* The panel's groups b0 / 2 .. (b0 + nb) / 2 against the prepared activations of nt tokens
 * (token t's blocks at a + t * a_stride; outputs at out + t * out_stride). */
EL_KERNEL_INLINE void q5r4_panel(const void *const rows[RM], int64_t b0, int64_t nb, const u32_act *a, int nt,
                                 int64_t a_stride, float *out, int64_t out_stride) {
    const block_q5_0_r4 *g = (const block_q5_0_r4 *)rows[0] + b0 / 2; /* the panel's groups; b0, nb even */
    const uintptr_t ahead = (uintptr_t)(g + nb / 2) + PREFETCH_AHEAD;
    /* [d0 d0 d1 d1 d2 d2 d3 d3] of block 0 and of block 1 from the group's 8 scales */
    const __m256i dup0 = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), dup1 = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    __m256 acc[EL_GEMV_FEW_TOKENS];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb / 2; i++) {
        prefetch_ahead(ahead, i, sizeof(block_q5_0_r4));
        const block_q5_0_r4 *gi = &g[i];
        const __m256i qh = _mm256_loadu_si256((const __m256i *)gi->qh);
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)gi->d));
        __m256i lo02, hi02, lo13, hi13;
        Q5R4_U(gi, qh, 0, lo02, hi02, lo13, hi13);
        u32_block_tokens(&a[2 * i], nt, a_stride, lo02, hi02, lo13, hi13, _mm256_permutevar8x32_ps(d8, dup0), acc);
        Q5R4_U(gi, qh, 1, lo02, hi02, lo13, hi13);
        u32_block_tokens(&a[2 * i + 1], nt, a_stride, lo02, hi02, lo13, hi13, _mm256_permutevar8x32_ps(d8, dup1), acc);
    }
    for (int t = 0; t < nt; t++) store_pairs4(acc[t], out + t * out_stride);
}

/* Activations prepared per call at most (32 KiB of stack). The driver's K chunk for these
 * formats, GEMM_PANEL_BYTES / sizeof(el_panel_q4) = 192 blocks, is below it, so the
 * split into parts (whose float sums would add in another order) never happens there. */
#define U32_MAX_BLOCKS 256

/* One panel against the prepared activations of nt tokens (q5r4_panel, q4_0_panel). */
typedef void (*u32_panel_fn)(const void *const rows[RM], int64_t b0, int64_t nb, const u32_act *a, int nt,
                             int64_t a_stride, float *out, int64_t out_stride);

/* The el_gemv_fn and el_gemv_span_fn bodies of a format (csum: the c of u = w + c): the
 * activations prepared once per call, for every panel of a span. Inlined with a constant
 * panel function, so each format gets its own loop. */
EL_KERNEL_INLINE void u32_gemv(u32_panel_fn panel, int csum, const void *const rows[RM], int64_t b0, int64_t nb,
                            const void *xv, float out[RM]) {
    _Alignas(32) u32_act a[U32_MAX_BLOCKS];
    for (int64_t c = 0; c < nb; c += U32_MAX_BLOCKS) {
        const int64_t n = nb - c < U32_MAX_BLOCKS ? nb - c : U32_MAX_BLOCKS;
        float part[RM];
        u32_prepare((const block_q8_0 *)xv + c, n, csum, a);
        panel(rows, b0 + c, n, a, 1, 0, c == 0 ? out : part, 0);
        if (c > 0)
            for (int r = 0; r < RM; r++) out[r] += part[r];
    }
}

EL_KERNEL_INLINE void u32_span(u32_panel_fn panel, int csum, const void *w, size_t w_row, int64_t n_panels, int64_t nb,
                            const void *xv, float *y) {
    _Alignas(32) u32_act a[U32_MAX_BLOCKS];
    const bool once = nb <= U32_MAX_BLOCKS; /* else (not a span the driver makes) per panel */
    if (once) u32_prepare(xv, nb, csum, a);
    const uint8_t *p = w;
    for (int64_t i = 0; i < n_panels; i++, p += RM * w_row, y += RM) {
        const void *rows[RM] = {p, p + w_row, p + 2 * w_row, p + 3 * w_row}; /* Q5_0_R4 reads rows[0] only */
        if (once) panel(rows, 0, nb, a, 1, 0, y, 0);
        else u32_gemv(panel, csum, rows, 0, nb, xv, y);
    }
}

/* Activations of a few tokens prepared per call at most (64 KiB of stack): all
 * EL_GEMV_FEW_TOKENS of them for rows of up to 64 blocks, at least 2 at a time up to 256. */
#define U32_FEW_BLOCKS 512

/* The el_gemv_few_fn body: nt tokens (token t's activations at xv + t * x_row) against
 * n_panels whole panels, the tokens in groups whose prepared activations fit the stack,
 * each group through the panels once (so each block of rows is decoded once per group).
 * Per token the same operations in the same order as u32_span, so the same bits. */
EL_KERNEL_INLINE void u32_few(u32_panel_fn panel, int csum, const void *w, size_t w_row, int64_t n_panels, int64_t nb,
                           const void *xv, size_t x_row, int nt, float *y, int64_t y_stride) {
    const uint8_t *x = xv;
    if (U32_FEW_BLOCKS / nb < 2) { /* under 2 tokens per group, nothing to share (the driver's
                                      * K chunk, 192 blocks, never gets here): token by token */
        for (int t = 0; t < nt; t++) u32_span(panel, csum, w, w_row, n_panels, nb, x + t * x_row, y + t * y_stride);
        return;
    }
    _Alignas(32) u32_act a[U32_FEW_BLOCKS];
    const int group = U32_FEW_BLOCKS / nb < EL_GEMV_FEW_TOKENS ? (int)(U32_FEW_BLOCKS / nb) : EL_GEMV_FEW_TOKENS;
    for (int t0 = 0; t0 < nt; t0 += group) {
        const int g = nt - t0 < group ? nt - t0 : group;
        for (int t = 0; t < g; t++) u32_prepare((const block_q8_0 *)(x + (size_t)(t0 + t) * x_row), nb, csum, a + t * nb);
        const uint8_t *p = w;
        for (int64_t i = 0; i < n_panels; i++, p += RM * w_row) {
            const void *rows[RM] = {p, p + w_row, p + 2 * w_row, p + 3 * w_row};
            panel(rows, 0, nb, a, g, nb, y + t0 * y_stride + RM * i, y_stride);
        }
    }
}

void X86_NAME(el_gemv_q5_0_r4)(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv, float out[RM]) {
    u32_gemv(q5r4_panel, 16, rows, b0, nb, xv, out);
}

void X86_NAME(el_gemv_q5_0_r4_span)(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *xv, float *y) {
    u32_span(q5r4_panel, 16, w, w_row, n_panels, nb, xv, y);
}

void X86_NAME(el_gemv_q5_0_r4_few)(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *xv,
                                   size_t x_row, int nt, float *y, int64_t y_stride) {
    u32_few(q5r4_panel, 16, w, w_row, n_panels, nb, xv, x_row, nt, y, y_stride);
}

/* K formats: exact per-row totals S (scaled quants times x) and M (bias times bsums)
 * for each super-block, then the float steps of gemm_k_pass for one token. The row
 * sums are made while decoding (no vectors kept across steps), per format. */

/* Broadcast int16 lane j of v (8 lanes, in both 128-bit halves) to all 16 lanes. */
static inline __m256i bcast_i16(__m256i v, int j) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)(0x0100 + 0x0202 * j)));
}

/* k4_scales_mins in registers: bytes 0-7 the scales, 8-15 the mins (the scalar one's
 * stores and the wider reloads of them stall store-to-load forwarding), for two blocks at
 * once: each 128-bit half of x holds one block's 12 scale bytes as its first 16 (a Q4_K
 * block's quants follow them). */
static inline __m256i k4_scales_mins_x2(__m256i x) {
    const __m256i s = _mm256_shuffle_epi32(x, _MM_SHUFFLE(2, 1, 2, 0)); /* words u0 u2 u1 u2 (u3: quants) */
    const __m256i t = _mm256_shuffle_epi32(x, _MM_SHUFFLE(1, 1, 0, 0)); /* u0 u0 u1 u1 */
    const __m256i m6 = _mm256_set1_epi32(0x3f3f3f3f), m4 = _mm256_set1_epi32(0x0f0f0f0f),
                  m2 = _mm256_set1_epi32(0x03030303);
    const __m256i even = _mm256_and_si256(s, m6); /* scales 0-3, mins 0-3 */
    const __m256i odd =
        _mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi32(s, _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4)), m4),
                        _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(t, 6), m2), 4)); /* 4-7 */
    return _mm256_blend_epi32(even, odd, 0xAA);
}

/* One block's: the low half of the two-block form. */
static inline __m128i k4_scales_mins_v(const uint8_t *scales) {
    return _mm256_castsi256_si128(
        k4_scales_mins_x2(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)scales))));
}

/* Blocks a (low half) and b (high half). */
static inline __m256i k4_scales_mins_v2(const uint8_t *a, const uint8_t *b) {
    return k4_scales_mins_x2(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                                     _mm_loadu_si128((const __m128i *)b), 1));
}

/* The K formats' one-token kernels serve a few tokens too (speculative verify batches):
 * each row's block is decoded once, then multiplied with each token's activations. Token t's
 * super-block b is at x_at(x, x_row, t) for x = token 0's (tokens x_row bytes apart). With
 * nt = 1 (decoding) the loops over tokens fold away. */
static inline const block_q8_K *x_at(const block_q8_K *x, size_t x_row, int t) {
    return (const block_q8_K *)((const uint8_t *)x + (size_t)t * x_row);
}

/* A Q4_K row's scaled quants times x (exact int32 lanes; smv: k4_scales_mins_v's bytes),
 * into sv[t][r] for each token. */
EL_KERNEL_INLINE void row_s_q4_K(const block_q4_K *b, const block_q8_K *x, size_t x_row, int nt, __m128i smv,
                                 __m256i sv[][RM], int r) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(smv));
    __m256i u[8];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * g));
        u[2 * g] = _mm256_and_si256(v, low4);
        u[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
    for (int t = 0; t < nt; t++) {
        const block_q8_K *xt = x_at(x, x_row, t);
        __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            s = dot2_s16(s, _mm256_maddubs_epi16(u[k], _mm256_loadu_si256((const __m256i *)(xt->qs + 32 * k))),
                         bcast_i16(sc, k));
        sv[t][r] = s;
    }
}

/* The same for Q4_K_T (quant/blocks.h) against transposed activations
 * (el_gemm_transpose_act_q8_K): the 8 vectors in group sums (gsum_add), then one scaling. */
EL_KERNEL_INLINE void row_s_q4_K_t(const block_q4_K *b, const block_q8_K *x, size_t x_row, int nt, __m128i smv,
                                   __m256i sv[][RM], int r) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i u[8];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        u[c] = _mm256_and_si256(v, low4);
        u[c + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
    for (int t = 0; t < nt; t++) {
        const block_q8_K *xt = x_at(x, x_row, t);
        __m256i g = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            g = gsum_add(g, u[c], _mm256_loadu_si256((const __m256i *)(xt->qs + 32 * c)));
            g = gsum_add(g, u[c + 4], _mm256_loadu_si256((const __m256i *)(xt->qs + 32 * c + 128)));
            __asm__("" : "+x"(g)); /* a running sum, not a tree (see gemm_kt_pass) */
        }
        sv[t][r] = gsum_scale_u8(g, smv);
    }
}

/* A Q6_K row's total with its bias (-32 * scale times the sums of 16 activations). Half a
 * block (4 vectors) decoded at a time: all 8 at once spilled registers on one token. */
EL_KERNEL_INLINE void row_q6_K(const block_q6_K *b, const block_q8_K *x, size_t x_row, int nt, __m256i sv[][RM],
                               int r) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
    /* step j needs scale 2j in lanes 0-7 and 2j+1 in lanes 8-15: scales 0-7 (s_even: the
     * low 128 bits in both halves) serve j < 4, scales 8-15 (s_odd) the rest */
    const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    const __m256i s_even = _mm256_permute4x64_epi64(s16, 0x44), s_odd = _mm256_permute4x64_epi64(s16, 0xEE);
    __m256i s[EL_GEMV_FEW_TOKENS];
    for (int t = 0; t < nt; t++) s[t] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
            _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45)),
        };
        for (int t = 0; t < nt; t++) {
            const block_q8_K *xt = x_at(x, x_row, t);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const int j = 4 * h + i; /* elements 32j..32j+31: scales 2j, 2j+1 */
                /* low half: int16 lane 2j % 8, high half: the next one (one shuffle) */
                const int l = (2 * j) % 8;
                const __m256i ctl = _mm256_set_m128i(_mm_set1_epi16((short)(0x0100 + 0x0202 * (l + 1))),
                                                     _mm_set1_epi16((short)(0x0100 + 0x0202 * l)));
                const __m256i sc = _mm256_shuffle_epi8(j < 4 ? s_even : s_odd, ctl);
                const __m256i xq = _mm256_loadu_si256((const __m256i *)(xt->qs + 32 * j));
                s[t] = dot2_s16(s[t], _mm256_maddubs_epi16(q[i], xq), sc);
            }
        }
    }
    /* |32 * scale * bsum pair| <= 32 * 128 * 2048 * 2 fits int32 */
    for (int t = 0; t < nt; t++)
        sv[t][r] = _mm256_sub_epi32(
            s[t], _mm256_slli_epi32(_mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)x_at(x, x_row, t)->bsums)), 5));
}

/* 4 bytes at p in the low lane (no store and reload: a wide load of narrow stores
 * stalls store forwarding, as a per-row float array read back as a vector did). */
static inline __m128i load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return _mm_cvtsi32_si128((int)v);
}

/* Q4_K and Q4_K_T, what the 4 rows share done once: the scale and min bytes of two rows
 * decoded in one pass; the mins of all 4 against the activations' group sums (bsums added
 * in pairs, once) and reduced together; the 4 rows' d and dmin (adjacent f16s) converted
 * in one step. row_s: row_s_q4_K or row_s_q4_K_t. Each rows4 function gives a super-block of
 * 4 rows for each of nt tokens: their exact totals S and M as [r0 r1 r2 r3] (s[t], m[t])
 * and the float factors d (da) and -dmin (db; Q6_K: M = 0, its bias is in S). */
#define ROWS4_Q4_K(name, row_s)                                                                              \
    EL_KERNEL_INLINE void name(const void *const wv[RM], int64_t b, const block_q8_K *x, size_t x_row, int nt,  \
                               __m128i s[], __m128i m[], __m128 *da, __m128 *db) {                           \
        const block_q4_K *const *w = (const block_q4_K *const *)wv;                                          \
        const __m256i sm01 = k4_scales_mins_v2(w[0][b].scales, w[1][b].scales);                              \
        const __m256i sm23 = k4_scales_mins_v2(w[2][b].scales, w[3][b].scales);                              \
        __m256i sv[EL_GEMV_FEW_TOKENS][RM];                                                                  \
        row_s(&w[0][b], x, x_row, nt, _mm256_castsi256_si128(sm01), sv, 0);                                  \
        row_s(&w[1][b], x, x_row, nt, _mm256_extracti128_si256(sm01, 1), sv, 1);                             \
        row_s(&w[2][b], x, x_row, nt, _mm256_castsi256_si128(sm23), sv, 2);                                  \
        row_s(&w[3][b], x, x_row, nt, _mm256_extracti128_si256(sm23, 1), sv, 3);                             \
        for (int t = 0; t < nt; t++) {                                                                       \
            s[t] = sum_halves(reduce_rows4(sv[t]));                                                          \
            m[t] = q4_K_mins_rows4(x_at(x, x_row, t), sm01, sm23);                                           \
        }                                                                                                    \
        q4_K_d_dmin_rows4(w, b, da, db);                                                                     \
    }

/* ROWS4_Q4_K's M of one token: the rows' mins times its group sums p0..p7 (|p| <= 4096:
 * int16, in both halves) against [mins of row a | of row b] as int16: lanes 0-3 row a's,
 * 4-7 row b's. */
EL_KERNEL_INLINE __m128i q4_K_mins_rows4(const block_q8_K *x, __m256i sm01, __m256i sm23) {
    const __m256i p32 = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), _mm256_set1_epi16(1));
    const __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(p32, p32), 0x88);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i m01 = _mm256_madd_epi16(_mm256_unpackhi_epi8(sm01, zero), p16);
    const __m256i m23 = _mm256_madd_epi16(_mm256_unpackhi_epi8(sm23, zero), p16);
    /* [r0 r0 r2 r2 | r1 r1 r3 r3] -> [r0 r2 r0 r2 | r1 r3 r1 r3] -> [r0 r1 r2 r3] */
    const __m256i h = _mm256_hadd_epi32(m01, m23);
    const __m256i h2 = _mm256_hadd_epi32(h, h);
    return _mm_unpacklo_epi32(_mm256_castsi256_si128(h2), _mm256_extracti128_si256(h2, 1));
}

/* ROWS4_Q4_K's d and -dmin: [d0 dmin0 ... d3 dmin3] -> [d0 d1 d2 d3 | dmin0 .. dmin3]. */
EL_KERNEL_INLINE void q4_K_d_dmin_rows4(const block_q4_K *const w[RM], int64_t b, __m128 *da, __m128 *db) {
    const __m128i d01 = _mm_unpacklo_epi32(load_u32(&w[0][b].d), load_u32(&w[1][b].d)); /* d, dmin */
    const __m128i d23 = _mm_unpacklo_epi32(load_u32(&w[2][b].d), load_u32(&w[3][b].d));
    const __m256 f = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_unpacklo_epi64(d01, d23)),
                                              _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    *da = _mm256_castps256_ps128(f);
    *db = _mm_xor_ps(_mm256_extractf128_ps(f, 1), _mm_set1_ps(-0.f)); /* -dmin exactly */
}

ROWS4_Q4_K(rows4_q4_K, row_s_q4_K)
ROWS4_Q4_K(rows4_q4_K_t, row_s_q4_K_t)

EL_KERNEL_INLINE void rows4_q6_K(const void *const wv[RM], int64_t b, const block_q8_K *x, size_t x_row, int nt,
                                 __m128i s[], __m128i m[], __m128 *da, __m128 *db) {
    const block_q6_K *const *w = (const block_q6_K *const *)wv;
    __m256i sv[EL_GEMV_FEW_TOKENS][RM];
    row_q6_K(&w[0][b], x, x_row, nt, sv, 0);
    row_q6_K(&w[1][b], x, x_row, nt, sv, 1);
    row_q6_K(&w[2][b], x, x_row, nt, sv, 2);
    row_q6_K(&w[3][b], x, x_row, nt, sv, 3);
    for (int t = 0; t < nt; t++) {
        s[t] = sum_halves(reduce_rows4(sv[t]));
        m[t] = _mm_setzero_si128();
    }
    *da = f16x4(w[0][b].d, w[1][b].d, w[2][b].d, w[3][b].d);
    *db = _mm_setzero_ps();
}

/* The 4 rows in step, super-block by super-block (as GEMV_Q32: the row totals are
 * reduced 4 rows at a time in registers, and the next panel is prefetched since four
 * streams in step are ones the hardware prefetcher follows badly); then the float steps
 * of gemm_k_pass for each token, in its order (int_bias: M is in S). Totals are exact
 * integers however they are added up. name##_n: nt tokens (x: token 0's super-block b0;
 * token t's x_row bytes further; outputs at out + t * out_stride); name##_one: one token;
 * the el_gemv_few_fn entry: nt tokens against n_panels whole panels. */
#define GEMV_K(name, block_t, rows4_fn, int_bias)                                                            \
    EL_KERNEL_INLINE void name##_n(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv,       \
                                   size_t x_row, int nt, float *out, int64_t out_stride) {                   \
        const block_q8_K *x = (const block_q8_K *)xv;                                                        \
        const void *w[RM];                                                                                   \
        for (int r = 0; r < RM; r++) w[r] = (const block_t *)rows[r] + b0;                                   \
        const uintptr_t ahead = (uintptr_t)rows[3] + (uintptr_t)(b0 + nb) * sizeof(block_t) + PREFETCH_AHEAD; \
        __m128 acc[EL_GEMV_FEW_TOKENS];                                                                      \
        for (int t = 0; t < nt; t++) acc[t] = _mm_setzero_ps();                                              \
        for (int64_t b = 0; b < nb; b++) {                                                                   \
            prefetch_ahead(ahead, b, RM * sizeof(block_t));                                                  \
            __m128i s[EL_GEMV_FEW_TOKENS], m[EL_GEMV_FEW_TOKENS];                                            \
            __m128 dav, dbv;                                                                                 \
            rows4_fn(w, b, &x[b], x_row, nt, s, m, &dav, &dbv);                                              \
            for (int t = 0; t < nt; t++) {                                                                   \
                const __m128 dx = _mm_set1_ps(x_at(&x[b], x_row, t)->d);                                     \
                acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(s[t]), _mm_mul_ps(dav, dx), acc[t]);                   \
                if (!int_bias) acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(m[t]), _mm_mul_ps(dbv, dx), acc[t]);    \
            }                                                                                                \
        }                                                                                                    \
        for (int t = 0; t < nt; t++) _mm_storeu_ps(out + t * out_stride, acc[t]);                            \
    }                                                                                                        \
    EL_KERNEL_INLINE void name##_one(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv,     \
                                     float out[RM]) {                                                        \
        name##_n(rows, b0, nb, xv, 0, 1, out, 0);                                                            \
    }                                                                                                        \
    GEMV_ENTRIES(name)                                                                                       \
    void X86_NAME(name##_few)(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *xv,     \
                              size_t x_row, int nt, float *y, int64_t y_stride) {                            \
        const uint8_t *p = w;                                                                                \
        for (int64_t i = 0; i < n_panels; i++, p += RM * w_row) {                                            \
            const void *rows[RM] = {p, p + w_row, p + 2 * w_row, p + 3 * w_row};                             \
            name##_n(rows, 0, nb, xv, x_row, nt, y + RM * i, y_stride);                                      \
        }                                                                                                    \
    }

GEMV_K(el_gemv_q4_K, block_q4_K, rows4_q4_K, 0)
GEMV_K(el_gemv_q4_K_t, block_q4_K, rows4_q4_K_t, 0)
GEMV_K(el_gemv_q6_K, block_q6_K, rows4_q6_K, 1)

/* ---- Q4_0: GEMV_Q32X2's body on the file's rows, activations prepared once per call ---- */

EL_KERNEL_INLINE void q4_0_panel(const void *const rows[RM], int64_t b0, int64_t nb, const u32_act *a, int nt,
                                 int64_t a_stride, float *out, int64_t out_stride) {
    const block_q4_0 *w0 = (const block_q4_0 *)rows[0] + b0, *w1 = (const block_q4_0 *)rows[1] + b0;
    const block_q4_0 *w2 = (const block_q4_0 *)rows[2] + b0, *w3 = (const block_q4_0 *)rows[3] + b0;
    const uintptr_t ahead = (uintptr_t)rows[3] + (uintptr_t)(b0 + nb) * sizeof(block_q4_0) + PREFETCH_AHEAD;
    __m256 acc[EL_GEMV_FEW_TOKENS];
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        prefetch_ahead(ahead, b, RM * sizeof(block_q4_0));
        __m256i lo02, hi02, lo13, hi13;
        u_rows2_q4_0(&w0[b], &w2[b], &lo02, &hi02);
        u_rows2_q4_0(&w1[b], &w3[b], &lo13, &hi13);
        u32_block_tokens(&a[b], nt, a_stride, lo02, hi02, lo13, hi13,
                         scales_rows4(w0[b].d, w1[b].d, w2[b].d, w3[b].d), acc);
    }
    for (int t = 0; t < nt; t++) store_pairs4(acc[t], out + t * out_stride);
}

void X86_NAME(el_gemv_q4_0)(const void *const rows[RM], int64_t b0, int64_t nb, const void *xv, float out[RM]) {
    u32_gemv(q4_0_panel, 8, rows, b0, nb, xv, out);
}

void X86_NAME(el_gemv_q4_0_span)(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *xv, float *y) {
    u32_span(q4_0_panel, 8, w, w_row, n_panels, nb, xv, y);
}

void X86_NAME(el_gemv_q4_0_few)(const void *w, size_t w_row, int64_t n_panels, int64_t nb, const void *xv,
                                size_t x_row, int nt, float *y, int64_t y_stride) {
    u32_few(q4_0_panel, 8, w, w_row, n_panels, nb, xv, x_row, nt, y, y_stride);
}
