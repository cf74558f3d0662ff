/* arm64 micro-kernels and one-token gemvs of the blocked matmul for cores without the
 * dot-product extension (Cortex-A53/A72): SMULL + pairwise adds (the kernels:
 * gemm_impl.h). Same totals and float steps as the SDOT and SMMLA kernels, so the same
 * results bit for bit. */
#define ARM_SDOT 0
#define ARM_DOT4 dot16_neon
#define ARM_NAME(f) f##_neon
#include "kernels/arm/gemm_impl.h"
