/* Model loading: the architecture table, and tensor lookup with shape/type checks. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
