/* arm64 micro-kernels and one-token gemvs of the blocked matmul with SDOT (the kernels:
 * gemm_impl.h). */
#define ARM_SDOT 1
#define ARM_DOT4 vdotq_s32
#define ARM_NAME(f) f##_dotprod
#include "kernels/arm/gemm_impl.h"
