/* Aligned heap allocation for buffers that SIMD kernels read (activations,
 * scratch, KV cache). */
#ifndef EL_CORE_ARENA_H
#define EL_CORE_ARENA_H

#include <stddef.h>

/* size bytes aligned to align (a power of two, at least sizeof(void*)); the size is
 * rounded up to a multiple of align. NULL on failure or bad arguments.
 * Free with el_aligned_free. */
void *el_aligned_alloc(size_t align, size_t size);
void el_aligned_free(void *p);

#endif
