/* Model loading: the architecture table, and tensor lookup with shape/type checks. */
#include "model/model.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Every supported architecture, keyed by general.architecture. */
static const el_arch *const ARCHES[] = {
    &el_arch_gemma3,
    &el_arch_llama,
    &el_arch_qwen2,
    &el_arch_phi3,
};

const el_arch *el_arch_find(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof ARCHES / sizeof ARCHES[0]; i++)
        if (strlen(ARCHES[i]->name) == len && !memcmp(ARCHES[i]->name, name, len)) return ARCHES[i];
    return NULL;
}

const char *el_arch_supported_list(void) {
    return "gemma3, llama, qwen2, phi3";
}

el_model *el_model_load(el_gguf *g, el_err *err) {
    el_gguf_str arch;
    if (el_gguf_get_str(g, "general.architecture", &arch, err) < 0) {
        el_fail_prefix(err, "model");
        return NULL;
    }
    const el_arch *a = el_arch_find(arch.data, arch.len);
    if (!a) {
        int n = arch.len > 64 ? 64 : (int)arch.len;
        el_fail(err, EDGELLM_EUNSUPPORTED,
                "model architecture '%.*s' is not supported (supported: %s)", n, arch.data,
                el_arch_supported_list());
        return NULL;
    }
    el_model *m = calloc(1, sizeof *m);
    if (!m) {
        el_fail(err, EDGELLM_ENOMEM, "model: out of memory");
        return NULL;
    }
    m->gguf = g;
    m->arch = a;
    if (a->load(m, err) < 0) {
        el_model_free(m);
        return NULL;
    }
    return m;
}

bool el_model_check_supported(const el_gguf *g, char *reason, size_t cap) {
    el_err err = {0};
    /* Loading only reads the file's metadata and takes views of its tensors. */
    el_model *m = el_model_load((el_gguf *)g, &err);
    if (!m) {
        if (cap) snprintf(reason, cap, "%s", err.message);
        return false;
    }
    el_model_free(m);
    if (cap) reason[0] = '\0';
    return true;
}

void el_model_free(el_model *m) {
    if (!m) return;
    if (m->packed_mem) munmap(m->packed_mem, m->packed_bytes);
    free(m->layers);
    free(m->gelu_table);
    free(m);
}

/* A tensor by name, checked: a type we can compute with, the expected shape
 * (ne = {n_in, n_out}; vectors have n_out == 1) and, for vectors, F32. */
int el_model_weight(const el_model *m, const char *name, int64_t n_in, int64_t n_out, bool required,
                    bool matrix, el_weight *out, el_err *err) {
    memset(out, 0, sizeof *out);
    const el_gguf_tensor *t = el_gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (!required) return 0;
        return el_fail(err, EDGELLM_ENOTFOUND, "model: tensor '%s' is missing", name);
    }
    uint64_t e0 = t->ne[0], e1 = t->ne[1];
    bool shape_ok = e0 == (uint64_t)n_in && e1 == (uint64_t)n_out && t->ne[2] == 1 && t->ne[3] == 1;
    if (!shape_ok)
        return el_fail(err, EDGELLM_EFORMAT,
                       "model: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%lld, %lld]",
                       name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                       (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (long long)n_in,
                       (long long)n_out);
    const el_type_traits *tr = el_type_get_traits(t->type);
    if (!matrix) {
        if (t->type != EL_TYPE_F32)
            return el_fail(err, EDGELLM_EUNSUPPORTED, "model: tensor '%s' has type %s, expected F32",
                           name, el_type_name(t->type));
    } else if (!tr || !tr->supported || !tr->dequantize || (tr->is_quantized && !tr->vec_dot_ref)) {
        return el_fail(err, EDGELLM_EUNSUPPORTED, "model: tensor '%s' has type %s, which cannot be computed with",
                       name, el_type_name(t->type));
    }
    size_t row = el_type_row_size((el_type)t->type, n_in);
    if (row == 0)
        return el_fail(err, EDGELLM_EFORMAT, "model: tensor '%s': row of %lld is not a whole number of %s blocks",
                       name, (long long)n_in, el_type_name(t->type));
    if (row > SIZE_MAX / (size_t)n_out || row * (size_t)n_out > t->nbytes)
        return el_fail(err, EDGELLM_EFORMAT, "model: tensor '%s': data size does not match its shape", name);
    out->data = t->data;
    out->type = (el_type)t->type;
    out->n_in = n_in;
    out->n_out = n_out;
    out->row_bytes = row;
    return 0;
}

int el_model_layer_weight(const el_model *m, int il, const char *suffix, int64_t n_in, int64_t n_out,
                          bool required, bool matrix, el_weight *out, el_err *err) {
    char name[128];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    return el_model_weight(m, name, n_in, n_out, required, matrix, out, err);
}

/* ---- weights regrouped at load ---- */

/* Every weight matrix of the model (output last; its data may be the embedding's). */
static int model_matrices(el_model *m, el_weight **out, int cap) {
    int n = 0;
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        el_layer *L = &m->layers[il];
        el_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (ws[i]->data && n < cap) out[n++] = ws[i];
    }
    if (m->output.data && n < cap) out[n++] = &m->output;
    return n;
}

/* Whether anonymous memory can be had in 2 MiB pages (transparent huge pages in
 * "always" or "madvise" mode). File mappings get 4 KiB pages on ext4 whatever we ask. */
static bool huge_pages_available(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return false;
    char buf[128] = {0};
    const bool ok = fgets(buf, sizeof buf, f) && (strstr(buf, "[always]") || strstr(buf, "[madvise]"));
    fclose(f);
    return ok;
}

static size_t matrix_bytes(const el_weight *w) { return w->row_bytes * (size_t)w->n_out; }
static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Drop the file pages wholly inside [p, p + n) from this process (a private, unwritten
 * file mapping: they stay in the page cache, and come back if read again). Marking the
 * range MADV_RANDOM first gives it a mapping area of its own, so the kernel's fault-around
 * (which maps up to 64 KiB of cached pages around a fault) no longer brings its pages
 * back when the tensors beside it are read: measured +10 MB of peak RSS on Gemma 3
 * 270M without it. */
static void release_file_pages(const void *p, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1), b = ((uintptr_t)p + n) & ~(page - 1);
    if (b <= a) return;
    madvise((void *)a, b - a, MADV_RANDOM);
    madvise((void *)a, b - a, MADV_DONTNEED);
}

#define REPACK_PIECE ((size_t)4 << 20) /* bytes per piece of work (and of the bounce buffer) */
#define REPACK_MAX_THREADS 4

/* What el_model_repack does with a matrix. */
typedef enum move_kind { MOVE_NONE, MOVE_REGROUP, MOVE_COPY } move_kind;

/* Regrouped where this CPU has a faster layout (Q5_0, Q4_K: el_repack_type); else copied
 * into 2 MiB pages where the product streams at the memory's speed: Q8_0 (Gemma 3 270M's
 * 178 MB output head, 2 threads: 26.7-28.9 -> 28.7-31.8 GB/s on 4 KiB vs 2 MiB pages, best
 * of 5 interleaved; TinyLlama-shaped Q8_0 decode +5-8%). Q4_0 and Q6_K are bound by their
 * instructions: a plain copy moved TinyLlama-shaped Q4_0 decode by -1..+2% for 0.7-1.1 s
 * more load (zeroing the copy's pages), so they stay mapped. */
static move_kind move_kind_of(const el_weight *w, bool huge) {
    if (el_repack_type(w->type, w->n_in, w->n_out) != w->type) return MOVE_REGROUP;
    return huge && w->type == EL_TYPE_Q8_0 ? MOVE_COPY : MOVE_NONE;
}

/* One piece of the move: bytes [off, off + len) of matrix w, regrouped (whole panels) or
 * copied, to dst + off (dst: the matrix's place in the arena). */
typedef struct move_piece {
    const el_weight *w;
    bool regroup;
    size_t off, len;
    uint8_t *dst;
} move_piece;

typedef struct move_job {
    const el_gguf *g;
    const move_piece *pieces;
    int n;
    atomic_int next, failed;
    el_err err; /* the first failure */
} move_job;

static int move_one(const el_gguf *g, const move_piece *p, uint8_t **bounce, el_err *err) {
    const el_weight *w = p->w;
    const void *src = (const uint8_t *)w->data + p->off;
    if (!p->regroup) return el_gguf_read(g, src, p->len, p->dst + p->off, err);
    if (p->len <= REPACK_PIECE) { /* else rows of over 1 MiB: straight from the mapping */
        if (!*bounce && !(*bounce = malloc(REPACK_PIECE))) return el_fail(err, EDGELLM_ENOMEM, "model: out of memory");
        if (el_gguf_read(g, src, p->len, *bounce, err) != 0) return -1;
        src = *bounce;
    }
    if (el_repack(w->type, src, p->dst + p->off, w->n_in, (int64_t)(p->len / w->row_bytes)) != 0)
        return el_fail(err, EDGELLM_EINVAL, "model: cannot regroup a %s matrix", el_type_name(w->type));
    return 0;
}

/* Pieces taken in turn from a counter, on every thread of the move. The kernel zeroes
 * each new page on the thread that first writes it, which is most of the time a move
 * takes here (perf: 72% in clear_page_erms), so threads shorten the load. */
static void *move_worker(void *arg) {
    move_job *J = arg;
    uint8_t *bounce = NULL;
    el_err err = {0};
    for (;;) {
        const int i = atomic_fetch_add(&J->next, 1);
        if (i >= J->n || atomic_load(&J->failed)) break;
        if (move_one(J->g, &J->pieces[i], &bounce, &err) != 0) {
            if (atomic_exchange(&J->failed, 1) == 0) J->err = err;
            break;
        }
    }
    free(bounce);
    return NULL;
}

/* Split matrix w (moved to dst) into pieces; returns how many it added (pieces may be NULL
 * to count them). */
static int add_pieces(move_piece *pieces, int at, const el_weight *w, bool regroup, uint8_t *dst) {
    const size_t bytes = matrix_bytes(w);
    size_t step = REPACK_PIECE;
    if (regroup) { /* whole panels of 4 rows */
        size_t rows = (REPACK_PIECE / w->row_bytes) & ~(size_t)3;
        step = (rows < 4 ? 4 : rows) * w->row_bytes;
    }
    int k = 0;
    for (size_t off = 0; off < bytes; off += step, k++)
        if (pieces) pieces[at + k] = (move_piece){w, regroup, off, bytes - off < step ? bytes - off : step, dst};
    return k;
}

static int run_move(const el_gguf *g, const move_piece *pieces, int n, el_err *err) {
    move_job J = {.g = g, .pieces = pieces, .n = n};
    atomic_init(&J.next, 0);
    atomic_init(&J.failed, 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int nth = cpus < 1 ? 1 : cpus > REPACK_MAX_THREADS ? REPACK_MAX_THREADS : (int)cpus;
    pthread_t th[REPACK_MAX_THREADS];
    int started = 0;
    for (int i = 1; i < nth; i++)
        if (pthread_create(&th[started], NULL, move_worker, &J) == 0) started++; /* else fewer threads */
    move_worker(&J);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    if (atomic_load(&J.failed)) {
        if (err) *err = J.err;
        return -1;
    }
    return 0;
}

int64_t el_model_repack(el_model *m, el_err *err) {
    if (m->packed_mem) return 0;
    enum { MAX_MATRICES = 7 * EL_MAX_LAYERS + 1 };
    el_weight **ws = malloc(MAX_MATRICES * sizeof *ws);
    if (!ws) return el_fail(err, EDGELLM_ENOMEM, "model: out of memory");
    const int n = model_matrices(m, ws, MAX_MATRICES);
    const bool huge = huge_pages_available();
    size_t total = 0;
    int n_pieces = 0;
    for (int i = 0; i < n; i++) {
        const move_kind k = move_kind_of(ws[i], huge);
        if (k == MOVE_NONE) continue;
        total += round64(matrix_bytes(ws[i]));
        n_pieces += add_pieces(NULL, 0, ws[i], k == MOVE_REGROUP, NULL);
    }
    if (total == 0) {
        free(ws);
        return 0;
    }
    move_piece *pieces = malloc((size_t)n_pieces * sizeof *pieces);
    void *mem = pieces ? mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
    if (mem == MAP_FAILED) {
        free(pieces);
        free(ws);
        return el_fail(err, EDGELLM_ENOMEM, "model: cannot map %zu bytes for regrouped weights", total);
    }
#ifdef MADV_HUGEPAGE
    if (huge) madvise(mem, total, MADV_HUGEPAGE);
#endif
    /* Read from the file (pread: no page faults on the mapping, and its pages never become
     * resident here), regrouped through a bounce buffer per thread. */
    uint8_t *next = mem;
    int at = 0;
    for (int i = 0; i < n; i++) {
        const move_kind k = move_kind_of(ws[i], huge);
        if (k == MOVE_NONE) continue;
        at += add_pieces(pieces, at, ws[i], k == MOVE_REGROUP, next);
        next += round64(matrix_bytes(ws[i]));
    }
    if (run_move(m->gguf, pieces, n_pieces, err) != 0) { /* nothing switched yet: the model is unchanged */
        munmap(mem, total);
        free(pieces);
        free(ws);
        return -1;
    }
    next = mem;
    for (int i = 0; i < n; i++) {
        el_weight *w = ws[i];
        const void *file = w->data;
        const move_kind k = move_kind_of(w, huge);
        if (k == MOVE_NONE) continue;
        if (k == MOVE_REGROUP) {
            w->packed = next;
            w->packed_type = el_repack_type(w->type, w->n_in, w->n_out);
        } else {
            if (m->tok_embd.data == file) m->tok_embd.data = next;
            w->data = next; /* the same bytes: every reader may use the copy */
        }
        /* The file's layout is read again only by the exact and llama.cpp-compatible
         * products (and row by row for a tied embedding regrouped), which fault it back in. */
        release_file_pages(file, matrix_bytes(w));
        next += round64(matrix_bytes(w));
    }
    m->packed_mem = mem;
    m->packed_bytes = total;
    free(pieces);
    free(ws);
    return (int64_t)(next - (uint8_t *)mem);
}
