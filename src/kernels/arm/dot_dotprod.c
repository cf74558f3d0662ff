/* arm64 quantized dot products with the dot-product extension (SDOT: four int8 products
 * summed into each int32 lane). The kernels: dot_quant_impl.h. */
#define ARM_DOT4 vdotq_s32
#define ARM_NAME(f) f##_dotprod
#include "kernels/arm/dot_quant_impl.h"
