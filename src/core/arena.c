#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>

void *el_aligned_alloc(size_t align, size_t size) {
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return NULL;
    if (size == 0) size = 1;
    if (size > SIZE_MAX - (align - 1)) return NULL;
    size = (size + align - 1) & ~(align - 1);
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0) return NULL;
    return p;
}

void el_aligned_free(void *p) { free(p); }
