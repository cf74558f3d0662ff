/* libFuzzer target: any bytes as a routing-policy file through el_policy_parse;
 * see fuzz_policy_body.h for the invariants checked. */
#include <stdio.h>

#include "fuzz_policy_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_policy_outcome o;
    const char *broken = fuzz_policy_one(data, size, &o);
    if (broken) {
        fprintf(stderr, "fuzz_policy: %s\n", broken);
        __builtin_trap();
    }
    return 0;
}
