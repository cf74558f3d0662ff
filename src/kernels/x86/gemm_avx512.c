/* The blocked matmul's micro-kernels and gemvs with AVX-512 VNNI (256-bit vectors, AVX512VL):
 * vpdpbusd and vpdpwssd fuse each multiply, its widening and the add into one
 * instruction, for the same panels and the same bits as the AVX2 kernels (the kernels:
 * gemm_tiles_impl.h). Selected with the avx512 level (core/cpu_features.h). */
#define X86_VNNI 1
#define X86_NAME(f) f##_avx512
#include "kernels/x86/gemm_tiles_impl.h"
