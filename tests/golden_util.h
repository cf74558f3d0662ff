/* Helpers shared by the tests that compare against golden data and the real model:
 * where the default model is, file hashes, and small logit utilities. */
#ifndef EDGELLM_TESTS_GOLDEN_UTIL_H
#define EDGELLM_TESTS_GOLDEN_UTIL_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sanitizer builds run slower: tests check fewer cases there (each says which). */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* $EDGELLM_MODEL, else the path scripts/setup wrote to ~/.cache/edgellm/default-model. */
static inline bool default_model_path(char *path, size_t cap) {
    const char *env = getenv("EDGELLM_MODEL");
    if (env && *env) {
        snprintf(path, cap, "%s", env);
        return true;
    }
    const char *home = getenv("HOME");
    if (!home) return false;
    char file[1024];
    snprintf(file, sizeof file, "%s/.cache/edgellm/default-model", home);
    FILE *f = fopen(file, "r");
    if (!f) return false;
    bool ok = fgets(path, (int)cap, f) != NULL;
    fclose(f);
    if (ok) path[strcspn(path, "\r\n")] = '\0';
    return ok && path[0];
}

static inline bool sha256_hex(const char *path, char out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    static unsigned char buf[1 << 20];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(md, buf, n);
    unsigned char h[32];
    unsigned int hl = 0;
    EVP_DigestFinal_ex(md, h, &hl);
    EVP_MD_CTX_free(md);
    fclose(f);
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", h[i]);
    return true;
}

static inline int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* The k largest ids of v, largest first. */
static inline void top_k(const float *v, int n, int k, int *out) {
    for (int j = 0; j < k; j++) out[j] = -1;
    for (int i = 0; i < n; i++) {
        if (out[k - 1] >= 0 && v[i] <= v[out[k - 1]]) continue;
        int j = k - 1;
        while (j > 0 && (out[j - 1] < 0 || v[i] > v[out[j - 1]])) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = i;
    }
}

static inline int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline bool in_list(int id, const int *ids, int n) {
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

#endif
