/* Monotonic clock helpers for timing loops, deadlines and spin budgets. */
#ifndef EL_CORE_TIMING_H
#define EL_CORE_TIMING_H

#include <stdint.h>

/* Nanoseconds on CLOCK_MONOTONIC (not wall time; only differences mean anything). */
int64_t el_time_ns(void);
/* Seconds on the same clock, as a double. */
double el_time_s(void);

#endif
