/* Speculative decoding helpers (spec.h). */
#include "sample/spec.h"

#include <stdio.h>
#include <string.h>

int el_spec_lookup(const int32_t *hist, size_t n, int ngram_min, int ngram_max, int32_t *out, int max) {
    if (ngram_min < 1) ngram_min = 1;
    if (max <= 0) return 0;
    for (int g = ngram_max; g >= ngram_min; g--) {
        if ((size_t)g >= n) continue;
        const int32_t *tail = hist + n - g;
        /* Latest start s < n - g whose g tokens equal the tail and which has a follower. */
        for (size_t s = n - g; s-- > 0;) {
            if (hist[s] != tail[0] || memcmp(hist + s, tail, (size_t)g * sizeof *hist) != 0) continue;
            size_t from = s + (size_t)g;
            int k = 0;
            while (k < max && from + (size_t)k < n) {
                out[k] = hist[from + (size_t)k];
                k++;
            }
            if (k > 0) return k;
        }
    }
    return 0;
}

bool el_spec_vocab_match(const el_tokenizer *a, const el_tokenizer *b, char *why, size_t cap) {
    const int32_t na = el_tokenizer_n_vocab(a), nb = el_tokenizer_n_vocab(b);
    if (na != nb) {
        snprintf(why, cap, "vocabulary sizes differ (%d vs %d tokens)", na, nb);
        return false;
    }
    if (el_tokenizer_bos(a) != el_tokenizer_bos(b) || el_tokenizer_eos(a) != el_tokenizer_eos(b)) {
        snprintf(why, cap, "BOS/EOS ids differ (%d/%d vs %d/%d)", el_tokenizer_bos(a), el_tokenizer_eos(a),
                 el_tokenizer_bos(b), el_tokenizer_eos(b));
        return false;
    }
    char pa[256], pb[256];
    for (int32_t id = 0; id < na; id++) {
        const int ka = el_token_to_piece(a, id, true, pa, sizeof pa);
        const int kb = el_token_to_piece(b, id, true, pb, sizeof pb);
        const bool same_len = ka == kb;
        /* Pieces longer than the buffers (none in real vocabularies) compare by length. */
        const size_t cmp = ka > 0 && (size_t)ka <= sizeof pa ? (size_t)ka : 0;
        if (!same_len || memcmp(pa, pb, cmp) != 0 ||
            el_tokenizer_is_control(a, id) != el_tokenizer_is_control(b, id)) {
            snprintf(why, cap, "token %d differs ('%.*s' vs '%.*s')", id, ka > 0 && ka < 40 ? ka : 0,
                     ka > 0 && ka < 40 ? pa : "", kb > 0 && kb < 40 ? kb : 0, kb > 0 && kb < 40 ? pb : "");
            return false;
        }
    }
    return true;
}
