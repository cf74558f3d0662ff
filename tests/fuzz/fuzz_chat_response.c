/* libFuzzer target: any bytes as a provider's answer to el_cloud_chat, served by a
 * loopback HTTP server; see fuzz_chat_response_body.h for the input layout and the
 * invariants checked. The server and client live for the whole fuzzing run. */
#include "fuzz_chat_response_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static fuzz_chat chat;
    static int ready;
    if (!ready) {
        el_err err;
        if (fuzz_chat_open(&chat, &err)) {
            fprintf(stderr, "fuzz_chat_response: %s\n", err.message);
            __builtin_trap();
        }
        ready = 1;
    }
    fuzz_chat_outcome o;
    const char *broken = fuzz_chat_one(&chat, data, size, &o);
    if (broken) {
        fprintf(stderr, "fuzz_chat_response: %s (rc %d, code %d, status %d)\n", broken, o.rc, (int)o.code, o.status);
        __builtin_trap();
    }
    return 0;
}
