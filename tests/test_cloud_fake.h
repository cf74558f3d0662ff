/* Test helper: starts tests/fake_openai.py on a free loopback port, scripts its
 * behaviour and reads what it received. Header-only so that test_cloud.c and
 * test_router.c can both use it (each tests/test_*.c is its own executable). */
#ifndef TEST_CLOUD_FAKE_H
#define TEST_CLOUD_FAKE_H

#include <curl/curl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct fake_upstream {
    pid_t pid;
    int port;
    char base_url[64]; /* http://127.0.0.1:PORT/v1 */
} fake_upstream;

static int fake_start(fake_upstream *f) {
    char script[1024];
    const char *src = getenv("EDGELLM_SOURCE_DIR");
    if (src) snprintf(script, sizeof script, "%s/tests/fake_openai.py", src);
    else snprintf(script, sizeof script, "%s", "tests/fake_openai.py");
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execlp("python3", "python3", script, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    char line[64] = "";
    int ok = in && fgets(line, sizeof line, in) && sscanf(line, "PORT %d", &f->port) == 1;
    if (in) fclose(in);
    if (!ok) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return -1;
    }
    f->pid = pid;
    snprintf(f->base_url, sizeof f->base_url, "http://127.0.0.1:%d/v1", f->port);
    return 0;
}

static void fake_stop(fake_upstream *f) {
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
}

static size_t fake_collect(char *p, size_t s, size_t n, void *ud) {
    char **buf = ud;
    size_t old = *buf ? strlen(*buf) : 0;
    char *nb = realloc(*buf, old + s * n + 1);
    if (!nb) return 0;
    memcpy(nb + old, p, s * n);
    nb[old + s * n] = '\0';
    *buf = nb;
    return s * n;
}

/* POST (body non-NULL) or GET a control path; returns the parsed JSON answer. */
static json_t *fake_control(const fake_upstream *f, const char *path, const char *body) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    CURL *h = curl_easy_init();
    char *buf = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fake_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &buf);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    json_t *j = rc == CURLE_OK && buf ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
    return j;
}

/* steps_json: a JSON array literal, e.g. "[\"429:1\", \"ok\"]". */
static void fake_script(const fake_upstream *f, const char *steps_json, const char *dflt) {
    char body[1024];
    snprintf(body, sizeof body, "{\"steps\": %s, \"default\": \"%s\"}", steps_json, dflt ? dflt : "ok");
    json_decref(fake_control(f, "/_reset", "{}"));
    json_decref(fake_control(f, "/_script", body));
}

static int fake_count(const fake_upstream *f) {
    json_t *j = fake_control(f, "/_log", NULL);
    int n = j ? (int)json_integer_value(json_object_get(j, "count")) : -1;
    json_decref(j);
    return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes a test's temporary folder and everything in it. */
static void rm_tree(const char *dir) {
    if (dir && dir[0]) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
