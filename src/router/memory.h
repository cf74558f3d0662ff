/* How much memory a model may use before it is loaded: the smaller of the
 * system's MemAvailable (/proc/meminfo) and the room left in this process's
 * cgroup (v2 memory.max - memory.current, or v1 limit_in_bytes - usage_in_bytes).
 * Every path is read under a prefix ("" for the real system) so tests can point
 * the readers at fake files. */
#ifndef EL_ROUTER_MEMORY_H
#define EL_ROUTER_MEMORY_H

#include <stdint.h>

#include "core/error.h"

typedef struct el_mem_info {
    int64_t mem_available;  /* bytes; -1 if /proc/meminfo could not be read */
    int64_t cgroup_limit;   /* bytes; -1 if there is no limit (or no cgroup files) */
    int64_t cgroup_usage;   /* bytes; -1 if unknown */
    int64_t usable;         /* min(mem_available, cgroup_limit - cgroup_usage); -1 if nothing known */
    int cgroup_version;     /* 2, 1 or 0 (none found) */
} el_mem_info;

/* Never fails on a missing file (that source is just unknown); returns -1 only
 * for a malformed one. */
int el_mem_read(const char *prefix, el_mem_info *out, el_err *err);

#endif
