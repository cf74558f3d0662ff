/* The blocked matmul's micro-kernels and gemvs with AVX-VNNI (the VEX form of vpdpbusd
 * and vpdpwssd, on CPUs that have it without AVX-512, such as recent laptop cores): the
 * same source, panels and bits as the AVX2 and AVX-512 VNNI variants
 * (gemm_tiles_impl.h). Selected where the CPU has AVX-VNNI (core/cpu_features.h). */
#define X86_VNNI 2
#define X86_NAME(f) f##_avxvnni
#include "kernels/x86/gemm_tiles_impl.h"
