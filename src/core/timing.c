#include "core/timing.h"

#include <time.h>

int64_t el_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double el_time_s(void) { return (double)el_time_ns() * 1e-9; }
