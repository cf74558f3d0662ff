/* libFuzzer target: any bytes through the SSE parser, whole, byte by byte and in pieces
 * derived from the input; see fuzz_sse_body.h for the invariants checked. */
#include <stdio.h>

#include "fuzz_sse_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_sse_outcome o;
    const char *broken = fuzz_sse_one(data, size, &o);
    if (broken) {
        fprintf(stderr, "fuzz_sse: %s\n", broken);
        __builtin_trap();
    }
    return 0;
}
