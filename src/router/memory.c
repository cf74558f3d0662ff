#include "router/memory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads the whole (small) file under prefix into buf; 0 on success, 1 if absent. */
static int read_small(const char *prefix, const char *path, char *buf, size_t n) {
    char full[1024];
    snprintf(full, sizeof full, "%s%s", prefix, path);
    FILE *f = fopen(full, "r");
    if (!f) return 1;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
    return 0;
}

/* "max" means unlimited (-1). */
static int parse_bytes(const char *s, int64_t *out) {
    while (*s == ' ' || *s == '\t') s++;
    if (!strncmp(s, "max", 3)) {
        *out = -1;
        return 0;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0) return -1;
    *out = v;
    return 0;
}

static int read_meminfo(const char *prefix, el_mem_info *out, el_err *err) {
    char buf[8192];
    if (read_small(prefix, "/proc/meminfo", buf, sizeof buf)) return 0;
    const char *p = strstr(buf, "MemAvailable:");
    if (!p) return 0; /* very old kernels: unknown */
    long long kb;
    if (sscanf(p + 13, "%lld", &kb) != 1 || kb < 0 || kb > INT64_MAX / 1024)
        return el_fail(err, EDGELLM_EFORMAT, "%s/proc/meminfo: MemAvailable is not a number of kB", prefix);
    out->mem_available = (int64_t)kb * 1024;
    return 0;
}

/* cgroup v2: /proc/self/cgroup has "0::/some/path"; the files live under
 * /sys/fs/cgroup/some/path. */
static int read_cgroup_v2(const char *prefix, el_mem_info *out, el_err *err) {
    char buf[4096], rel[1024] = "";
    if (read_small(prefix, "/proc/self/cgroup", buf, sizeof buf)) return 1;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (!strncmp(line, "0::", 3)) {
            snprintf(rel, sizeof rel, "%s", line + 3);
            break;
        }
    if (!rel[0]) return 1;
    if (!strcmp(rel, "/")) rel[0] = '\0';
    char path[1200], val[128];
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", rel);
    if (read_small(prefix, path, val, sizeof val)) return 1;
    if (parse_bytes(val, &out->cgroup_limit))
        return el_fail(err, EDGELLM_EFORMAT, "%s%s: not a byte count or 'max'", prefix, path);
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", rel);
    if (!read_small(prefix, path, val, sizeof val) && parse_bytes(val, &out->cgroup_usage))
        return el_fail(err, EDGELLM_EFORMAT, "%s%s: not a byte count", prefix, path);
    out->cgroup_version = 2;
    return 0;
}

/* cgroup v1: the memory controller's line in /proc/self/cgroup ("4:memory:/x")
 * names the group; inside a container the group is often mounted at the root. */
static int read_cgroup_v1_at(const char *prefix, const char *dir, el_mem_info *out, el_err *err) {
    char lim[1200], use[1200], val[128];
    snprintf(lim, sizeof lim, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", dir);
    snprintf(use, sizeof use, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", dir);
    if (read_small(prefix, lim, val, sizeof val)) return 1;
    if (parse_bytes(val, &out->cgroup_limit))
        return el_fail(err, EDGELLM_EFORMAT, "%s%s: not a byte count", prefix, lim);
    /* v1 reports "no limit" as a huge page-rounded number. */
    if (out->cgroup_limit >= ((int64_t)1 << 60)) out->cgroup_limit = -1;
    if (!read_small(prefix, use, val, sizeof val) && parse_bytes(val, &out->cgroup_usage))
        return el_fail(err, EDGELLM_EFORMAT, "%s%s: not a byte count", prefix, use);
    out->cgroup_version = 1;
    return 0;
}

static int read_cgroup_v1(const char *prefix, el_mem_info *out, el_err *err) {
    char buf[4096], rel[1024] = "";
    if (!read_small(prefix, "/proc/self/cgroup", buf, sizeof buf)) {
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char *c1 = strchr(line, ':');
            char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c2) continue;
            *c2 = '\0';
            /* the controller list may be "memory" or e.g. "memory,hugetlb" */
            if (strstr(c1 + 1, "memory")) {
                snprintf(rel, sizeof rel, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
                break;
            }
        }
    }
    int rc = rel[0] ? read_cgroup_v1_at(prefix, rel, out, err) : 1;
    if (rc == 1) rc = read_cgroup_v1_at(prefix, "", out, err);
    return rc;
}

int el_mem_read(const char *prefix, el_mem_info *out, el_err *err) {
    if (!prefix) prefix = "";
    out->mem_available = out->cgroup_limit = out->cgroup_usage = out->usable = -1;
    out->cgroup_version = 0;
    if (read_meminfo(prefix, out, err)) return -1;
    int rc = read_cgroup_v2(prefix, out, err);
    if (rc < 0) return -1;
    if (rc == 1) {
        out->cgroup_limit = out->cgroup_usage = -1;
        if (read_cgroup_v1(prefix, out, err) < 0) return -1;
    }
    out->usable = out->mem_available;
    if (out->cgroup_limit >= 0) {
        int64_t room = out->cgroup_limit - (out->cgroup_usage > 0 ? out->cgroup_usage : 0);
        if (room < 0) room = 0;
        if (out->usable < 0 || room < out->usable) out->usable = room;
    }
    return 0;
}
