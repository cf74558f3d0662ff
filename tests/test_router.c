/* Router: tier choice, every fallback path, model lifecycle, bounded queues,
 * ledger and budget — with a fake local engine and the fake OpenAI upstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sys/stat.h>

#include "cloud/clock.h"
#include "router/ledger.h"
#include "router/memory.h"
#include "router/policy.h"
#include "router/router.h"
#include "test_cloud_fake.h"

/* ---- a fake local engine ---- */

typedef struct fake_engine {
    pthread_mutex_t mu;
    int loads, unloads, generates, loaded_now;
    const char *fail_load_path;   /* loading a path containing this fails */
    const char *fail_run_path;    /* generating with it fails */
    int load_ms;                  /* time to load */
    int prefill_ms;               /* before the first piece */
    int piece_ms;                 /* between pieces */
    char meminfo_after_unload[512]; /* if set: unload frees memory by rewriting this file */
    int64_t mem_kb_after_unload;
} fake_engine;

typedef struct fake_model {
    char name[256];
} fake_model;

static void *fake_load(void *ctx, const char *path, int threads, int n_ctx, el_err *err) {
    (void)threads, (void)n_ctx;
    fake_engine *e = ctx;
    el_sleep_ms(e->load_ms);
    if (e->fail_load_path && strstr(path, e->fail_load_path)) {
        el_fail(err, EDGELLM_EFORMAT, "fake engine: '%s' is not a GGUF file", path);
        return NULL;
    }
    fake_model *m = calloc(1, sizeof *m);
    const char *base = strrchr(path, '/');
    snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : path);
    pthread_mutex_lock(&e->mu);
    e->loads++;
    e->loaded_now++;
    pthread_mutex_unlock(&e->mu);
    return m;
}

static void fake_unload(void *ctx, void *model) {
    fake_engine *e = ctx;
    pthread_mutex_lock(&e->mu);
    e->unloads++;
    e->loaded_now--;
    if (e->meminfo_after_unload[0]) {
        FILE *f = fopen(e->meminfo_after_unload, "w");
        fprintf(f, "MemTotal: 99999999 kB\nMemAvailable: %lld kB\n", (long long)e->mem_kb_after_unload);
        fclose(f);
    }
    pthread_mutex_unlock(&e->mu);
    free(model);
}

/* Waits ms in small steps, asking the router whether to stop. */
static int fake_wait(const el_local_callbacks *cb, int ms) {
    for (int t = 0; t < ms; t += 5) {
        if (cb->should_abort(cb->ud)) return 1;
        el_sleep_ms(ms - t < 5 ? ms - t : 5);
    }
    return cb->should_abort(cb->ud);
}

static int fake_generate(void *ctx, void *model, const el_chat_msg *msgs, size_t n, const el_gen_params *p,
                         const el_local_callbacks *cb, el_local_usage *usage, el_err *err) {
    (void)p;
    fake_engine *e = ctx;
    fake_model *m = model;
    pthread_mutex_lock(&e->mu);
    e->generates++;
    pthread_mutex_unlock(&e->mu);
    if (e->fail_run_path && strstr(m->name, e->fail_run_path))
        return el_fail(err, EDGELLM_EIO, "fake engine: decode failed in %s", m->name);
    if (fake_wait(cb, e->prefill_ms)) return el_fail(err, EDGELLM_ECANCELLED, "fake engine: stopped");
    char answer[512];
    snprintf(answer, sizeof answer, "local %s: You said: %s", m->name, msgs[n - 1].content);
    size_t len = strlen(answer), pieces = 0;
    for (size_t i = 0; i < len; i += 4) {
        if (i && fake_wait(cb, e->piece_ms)) return el_fail(err, EDGELLM_ECANCELLED, "fake engine: stopped");
        if (cb->on_piece(cb->ud, answer + i, len - i < 4 ? len - i : 4))
            return el_fail(err, EDGELLM_ECANCELLED, "fake engine: stopped");
        pieces++;
    }
    usage->tokens_in = 10;
    usage->tokens_out = (int)pieces;
    return 0;
}

static fake_engine ENGINE;
static el_local_backend BACKEND = {&ENGINE, fake_load, fake_generate, fake_unload};

static void engine_reset(void) {
    pthread_mutex_lock(&ENGINE.mu);
    ENGINE.loads = ENGINE.unloads = ENGINE.generates = ENGINE.loaded_now = 0;
    ENGINE.fail_load_path = ENGINE.fail_run_path = NULL;
    ENGINE.load_ms = ENGINE.prefill_ms = ENGINE.piece_ms = 0;
    ENGINE.meminfo_after_unload[0] = '\0';
    pthread_mutex_unlock(&ENGINE.mu);
}

/* ---- fixtures: a temp folder with a fake /proc and /sys, the fake upstream ---- */

static char TMP[256];
static fake_upstream FAKE;

static void write_file(const char *rel, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", TMP, rel);
    for (char *s = path + strlen(TMP) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* MemAvailable and a cgroup v2 limit (limit_mb < 0: "max"). */
static void set_memory(int64_t avail_mb, int64_t limit_mb, int64_t usage_mb) {
    char buf[256];
    snprintf(buf, sizeof buf, "MemTotal: 99999999 kB\nMemFree: 1 kB\nMemAvailable: %lld kB\n",
             (long long)avail_mb * 1024);
    write_file("sys1/proc/meminfo", buf);
    write_file("sys1/proc/self/cgroup", "0::/edge.slice\n");
    if (limit_mb < 0) snprintf(buf, sizeof buf, "max\n");
    else snprintf(buf, sizeof buf, "%lld\n", (long long)limit_mb << 20);
    write_file("sys1/sys/fs/cgroup/edge.slice/memory.max", buf);
    snprintf(buf, sizeof buf, "%lld\n", (long long)usage_mb << 20);
    write_file("sys1/sys/fs/cgroup/edge.slice/memory.current", buf);
}

static int setup_all(void **state) {
    (void)state;
    snprintf(TMP, sizeof TMP, "/tmp/edgellm-test-router-XXXXXX");
    if (!mkdtemp(TMP)) return -1;
    pthread_mutex_init(&ENGINE.mu, NULL);
    setenv("EDGELLM_TEST_ROUTER_KEY", "sk-router-test", 1);
    return fake_start(&FAKE);
}

static int teardown_all(void **state) {
    (void)state;
    fake_stop(&FAKE);
    rm_tree(TMP);
    return 0;
}

typedef struct policy_opts {
    const char *strategy;
    const char *base_url;      /* NULL: the fake upstream */
    double budget;
    double ttft_ms, total_ms;
    int small_mem_mb, medium_mem_mb;
    double keep_alive_s;
    int small_concurrent, small_queue;
    double small_queue_ms;
    int retries, breaker;
    const char *ledger_name;
} policy_opts;

static policy_opts defaults(void) {
    policy_opts o = {"hybrid", NULL, 0, 0, 0, 100, 200, -1, 4, 4, 5000, 1, 0, "ledger.sqlite"};
    return o;
}

static el_router *open_router(policy_opts o, el_policy *pol) {
    char json[4096], ledger[512];
    snprintf(ledger, sizeof ledger, "%s/%s", TMP, o.ledger_name);
    snprintf(json, sizeof json,
             "{\"strategy\": \"%s\", \"ledger\": \"%s\", \"monthly_budget_usd\": %g,"
             " \"local_ttft_deadline_ms\": %g, \"local_total_deadline_ms\": %g, \"sysroot\": \"%s/sys1\","
             " \"tiers\": ["
             "  {\"name\": \"small\", \"kind\": \"local\", \"model\": \"/models/small.gguf\", \"memory_mb\": %d,"
             "   \"max_output_tokens\": 128, \"max_prompt_tokens\": 256, \"keep_alive_s\": %g,"
             "   \"max_concurrent\": %d, \"queue\": %d, \"queue_timeout_ms\": %g},"
             "  {\"name\": \"medium\", \"kind\": \"local\", \"model\": \"/models/medium.gguf\", \"memory_mb\": %d,"
             "   \"max_output_tokens\": 512, \"keep_alive_s\": %g},"
             "  {\"name\": \"cloud\", \"kind\": \"cloud\", \"base_url\": \"%s\", \"model\": \"fake-model\","
             "   \"api_key_env\": \"EDGELLM_TEST_ROUTER_KEY\", \"price_in_per_mtok\": 1000, \"price_out_per_mtok\": 2000,"
             "   \"max_retries\": %d, \"backoff_base_ms\": 2, \"backoff_max_ms\": 5, \"retry_after_max_ms\": 2000,"
             "   \"breaker_threshold\": %d, \"breaker_cooldown_ms\": 600000, \"seed\": 7,"
             "   \"first_byte_timeout_ms\": 3000, \"total_timeout_ms\": 5000}]}",
             o.strategy, ledger, o.budget, o.ttft_ms, o.total_ms, TMP, o.small_mem_mb, o.keep_alive_s,
             o.small_concurrent, o.small_queue, o.small_queue_ms, o.medium_mem_mb, o.keep_alive_s,
             o.base_url ? o.base_url : FAKE.base_url, o.retries, o.breaker);
    el_err err;
    if (el_policy_parse(json, NULL, "(test)", pol, &err)) fail_msg("policy: %s", err.message);
    el_router *r = el_router_open(pol, &BACKEND, &err);
    if (!r) fail_msg("router: %s", err.message);
    return r;
}

typedef struct seen {
    char text[2048];
    int restarts;
} seen;

static int on_route(void *ud, int event, const char *piece, size_t n) {
    seen *s = ud;
    if (event == EL_ROUTE_RESTART) {
        s->restarts++;
        s->text[0] = '\0';
        return 0;
    }
    size_t used = strlen(s->text);
    snprintf(s->text + used, sizeof s->text - used, "%.*s", (int)n, piece);
    return 0;
}

static el_route_request ask(const el_chat_msg *m, int max_tokens) {
    el_route_request q = {0};
    q.messages = m;
    q.n_messages = 1;
    q.max_tokens = max_tokens;
    q.temperature = 0.5;
    return q;
}

static int ledger_rows(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", TMP, name);
    el_ledger *l = el_ledger_open(path, NULL);
    el_usage_row *rows;
    size_t n;
    int total = 0;
    if (l && el_ledger_usage(l, 0, &rows, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++) total += (int)rows[i].requests;
        free(rows);
    }
    el_ledger_close(l);
    return total;
}

/* ---- memory readers and policy files ---- */

static void test_memory_readers(void **state) {
    (void)state;
    el_mem_info mi;
    el_err err;
    set_memory(8000, 2000, 500);
    char root[300];
    snprintf(root, sizeof root, "%s/sys1", TMP);
    assert_int_equal(el_mem_read(root, &mi, &err), 0);
    assert_int_equal(mi.cgroup_version, 2);
    assert_int_equal(mi.mem_available, (int64_t)8000 << 20);
    assert_int_equal(mi.usable, (int64_t)1500 << 20); /* the cgroup room is smaller */
    set_memory(700, -1, 500);
    assert_int_equal(el_mem_read(root, &mi, &err), 0);
    assert_int_equal(mi.cgroup_limit, -1);
    assert_int_equal(mi.usable, (int64_t)700 << 20);

    /* cgroup v1 as a fallback (memory controller named in /proc/self/cgroup). */
    write_file("sys2/proc/meminfo", "MemAvailable: 4096000 kB\n");
    write_file("sys2/proc/self/cgroup", "4:memory:/job\n0::/\n");
    write_file("sys2/sys/fs/cgroup/memory/job/memory.limit_in_bytes", "1073741824\n");
    write_file("sys2/sys/fs/cgroup/memory/job/memory.usage_in_bytes", "536870912\n");
    snprintf(root, sizeof root, "%s/sys2", TMP);
    assert_int_equal(el_mem_read(root, &mi, &err), 0);
    assert_int_equal(mi.cgroup_version, 1);
    assert_int_equal(mi.usable, (int64_t)512 << 20);

    write_file("sys3/proc/meminfo", "MemAvailable: lots kB\n");
    snprintf(root, sizeof root, "%s/sys3", TMP);
    assert_int_equal(el_mem_read(root, &mi, &err), -1);
    assert_int_equal(err.code, EDGELLM_EFORMAT);
    assert_non_null(strstr(err.message, "MemAvailable"));

    /* The real system reads without error. */
    assert_int_equal(el_mem_read("", &mi, &err), 0);
    assert_true(mi.mem_available > 0);
}

static void test_policy_files(void **state) {
    (void)state;
    el_policy p;
    el_err err;
    char path[1024];
    const char *src = getenv("EDGELLM_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/docs/policy.example.json", src ? src : ".");
    assert_int_equal(el_policy_load(path, &p, &err), 0);
    assert_int_equal(p.n_tiers, 3);
    assert_int_equal(p.strategy, EL_STRATEGY_HYBRID);
    assert_int_equal(p.tiers[0].kind, EL_TIER_LOCAL);
    assert_int_equal(p.tiers[0].max_output_tokens, 128);
    assert_int_equal(p.tiers[0].memory_bytes, (int64_t)400 << 20);
    assert_int_equal(p.tiers[2].kind, EL_TIER_CLOUD);
    assert_string_equal(p.tiers[2].cloud.api_key_env, "DEEPSEEK_API_KEY");
    assert_true(p.tiers[2].price_out_per_mtok > 0);
    assert_non_null(strstr(p.tiers[2].cloud.cache_path, "cloud-cache.sqlite"));
    el_policy_free(&p);

    const char *bad[][2] = {
        {"{\"tiers\": [{\"name\": \"a\", \"kind\": \"local\", \"model\": \"m\", \"prise\": 1}]}", "unknown key 'prise'"},
        {"{\"strategy\": \"fast\", \"tiers\": []}", "'strategy' must be"},
        {"{\"tiers\": [{\"name\": \"a\", \"kind\": \"local\", \"model\": \"m\", \"base_url\": \"x\"}]}",
         "does not apply to a local tier"},
        {"{\"tiers\": [{\"name\": \"c\", \"kind\": \"cloud\", \"model\": \"m\"}]}", "needs 'base_url'"},
        {"{\"tiers\": [{\"name\": \"a\", \"kind\": \"local\", \"model\": \"m\", \"threads\": -2}]}", "outside"},
        {"{\"tiers\": [{\"name\": \"a\", \"kind\": \"local\", \"model\": \"m\"},"
         " {\"name\": \"a\", \"kind\": \"local\", \"model\": \"n\"}]}", "two tiers are named 'a'"},
        {"{\"monthly_budget_usd\": 3, \"tiers\": [{\"name\": \"a\", \"kind\": \"local\", \"model\": \"m\"}]}",
         "needs a 'ledger'"},
        {"{\"tiers\": [", "line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(el_policy_parse(bad[i][0], NULL, "(test)", &p, &err), -1);
        if (!strstr(err.message, bad[i][1])) fail_msg("case %zu: '%s' lacks '%s'", i, err.message, bad[i][1]);
    }
}

/* ---- tier choice ---- */

static void test_hybrid_tier_choice(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    fake_script(&FAKE, "[]", "ok");
    el_policy pol;
    policy_opts o = defaults();
    o.ledger_name = "choice.sqlite";
    el_router *r = open_router(o, &pol);
    el_chat_msg m[] = {{"user", "hi"}};
    struct {
        int max_tokens;
        const char *hint;
        el_quality quality;
        const char *tier;
        int local;
    } cases[] = {
        {50, NULL, EL_QUALITY_ANY, "small", 1},    {300, NULL, EL_QUALITY_ANY, "medium", 1},
        {2000, NULL, EL_QUALITY_ANY, "cloud", 0},  {0, NULL, EL_QUALITY_ANY, "cloud", 0},
        {50, "medium", EL_QUALITY_ANY, "medium", 1}, {50, NULL, EL_QUALITY_HIGH, "cloud", 0},
        {2000, NULL, EL_QUALITY_LOW, "small", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        el_route_request q = ask(m, cases[i].max_tokens);
        q.tier_hint = cases[i].hint;
        q.quality = cases[i].quality;
        el_route_result res;
        el_err err;
        seen s = {"", 0};
        assert_int_equal(el_router_ask(r, &q, on_route, &s, &res, &err), 0);
        if (strcmp(res.tier, cases[i].tier)) fail_msg("case %zu ran on %s: %s", i, res.tier, res.why);
        assert_int_equal(res.local, cases[i].local);
        assert_string_equal(res.fallback, "");
        assert_string_equal(s.text, res.text);
        assert_true(res.why[0] != '\0');
        if (res.local) {
            assert_true(res.cost_usd == 0);
        } else {
            assert_string_equal(res.text, "You said: hi");
            /* price 1000 $/M in, 2000 $/M out; the fake reports its token counts */
            assert_true(res.cost_usd > 0);
            assert_true(res.cost_usd == res.tokens_in * 1000 / 1e6 + res.tokens_out * 2000 / 1e6);
        }
        el_route_result_free(&res);
    }
    /* A long prompt does not fit the small tier's max_prompt_tokens (256). */
    char longp[2000];
    memset(longp, 'w', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    el_chat_msg lm[] = {{"user", longp}};
    el_route_request q = ask(lm, 50);
    el_route_result res;
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, NULL), 0);
    assert_string_equal(res.tier, "medium");
    el_route_result_free(&res);
    /* An unknown hint is a clear error. */
    q = ask(m, 50);
    q.tier_hint = "huge";
    el_err err;
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_EINVAL);
    assert_non_null(strstr(err.message, "huge"));
    el_route_result_free(&res);
    el_router_close(r);
    el_policy_free(&pol);
    assert_int_equal(ledger_rows("choice.sqlite"), 9); /* every answered request, once */
    assert_int_equal(fake_count(&FAKE), 3);
}

/* ---- local fallbacks ---- */

static void test_not_enough_memory_goes_to_next_tier(void **state) {
    (void)state;
    engine_reset();
    fake_script(&FAKE, "[]", "ok");
    el_policy pol;
    policy_opts o = defaults();
    o.small_mem_mb = 3000;
    o.medium_mem_mb = 200;
    el_router *r = open_router(o, &pol);
    el_chat_msg m[] = {{"user", "short"}};
    el_route_request q = ask(m, 50);
    el_route_result res;
    el_err err;
    set_memory(1000, -1, 0); /* MemAvailable too small for 'small' */
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), 0);
    assert_string_equal(res.tier, "medium");
    assert_non_null(strstr(res.fallback, "small: not enough memory to load it: needs 3000 MiB, MemAvailable 1000 MiB"));
    el_route_result_free(&res);
    set_memory(9000, 2500, 400); /* plenty available, but the cgroup has 2100 MiB left */
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), 0);
    assert_string_equal(res.tier, "medium");
    assert_non_null(strstr(res.fallback, "cgroup v2 room 2100 MiB"));
    el_route_result_free(&res);
    assert_int_equal(ENGINE.loads, 1); /* 'small' was never loaded; 'medium' once */
    set_memory(100, -1, 0); /* nothing local fits: cloud */
    el_router_unload_idle(r);
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), 0);
    assert_string_equal(res.tier, "cloud");
    el_route_result_free(&res);
    el_router_close(r);
    el_policy_free(&pol);
}

static void test_low_memory_unloads_idle_models(void **state) {
    (void)state;
    engine_reset();
    fake_script(&FAKE, "[]", "ok");
    set_memory(5000, -1, 0);
    el_policy pol;
    policy_opts o = defaults();
    o.small_mem_mb = 1000;
    o.medium_mem_mb = 3000;
    el_router *r = open_router(o, &pol);
    el_chat_msg m[] = {{"user", "x"}};
    el_route_request q = ask(m, 300);
    el_route_result res;
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, NULL), 0);
    assert_string_equal(res.tier, "medium");
    el_route_result_free(&res);
    assert_true(el_router_is_loaded(r, "medium"));
    /* Now memory is short for 'small'; unloading idle 'medium' frees it. */
    set_memory(500, -1, 0);
    snprintf(ENGINE.meminfo_after_unload, sizeof ENGINE.meminfo_after_unload, "%s/sys1/proc/meminfo", TMP);
    ENGINE.mem_kb_after_unload = 3500 * 1024;
    q = ask(m, 50);
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, NULL), 0);
    assert_string_equal(res.tier, "small");
    assert_string_equal(res.fallback, "");
    el_route_result_free(&res);
    assert_false(el_router_is_loaded(r, "medium"));
    assert_true(el_router_is_loaded(r, "small"));
    assert_int_equal(ENGINE.unloads, 1);
    el_router_close(r);
    el_policy_free(&pol);
    assert_int_equal(ENGINE.loaded_now, 0); /* close unloads everything */
}

static void test_load_and_run_failures_go_to_next_tier(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    fake_script(&FAKE, "[]", "ok");
    el_policy pol;
    el_router *r = open_router(defaults(), &pol);
    el_chat_msg m[] = {{"user", "q"}};
    el_route_request q = ask(m, 50);
    el_route_result res;
    ENGINE.fail_load_path = "small";
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, NULL), 0);
    assert_string_equal(res.tier, "medium");
    assert_non_null(strstr(res.fallback, "small: fake engine: '/models/small.gguf' is not a GGUF file"));
    el_route_result_free(&res);
    ENGINE.fail_load_path = NULL;
    ENGINE.fail_run_path = "small";
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, NULL), 0);
    assert_string_equal(res.tier, "medium");
    assert_non_null(strstr(res.fallback, "decode failed"));
    el_route_result_free(&res);
    ENGINE.fail_run_path = "gguf"; /* every local model fails: the cloud answers */
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, NULL), 0);
    assert_string_equal(res.tier, "cloud");
    assert_non_null(strstr(res.fallback, "small: "));
    assert_non_null(strstr(res.fallback, "medium: "));
    el_route_result_free(&res);
    el_router_close(r);
    el_policy_free(&pol);
}

static void test_local_deadlines_go_to_cloud(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    fake_script(&FAKE, "[]", "ok");
    el_policy pol;
    policy_opts o = defaults();
    o.ttft_ms = 100;
    o.total_ms = 1000;
    el_router *r = open_router(o, &pol);
    el_chat_msg m[] = {{"user", "a question with a fairly long answer"}};
    el_route_request q = ask(m, 50);
    el_route_result res;
    seen s = {"", 0};
    ENGINE.prefill_ms = 3000; /* first token far too late */
    assert_int_equal(el_router_ask(r, &q, on_route, &s, &res, NULL), 0);
    assert_string_equal(res.tier, "cloud"); /* straight to the cloud, 'medium' skipped */
    assert_non_null(strstr(res.fallback, "small: no first token within the 100 ms TTFT deadline"));
    assert_null(strstr(res.fallback, "medium"));
    assert_int_equal(res.restarts, 0);
    el_route_result_free(&res);

    ENGINE.prefill_ms = 0;
    ENGINE.piece_ms = 150; /* starts fast, too slow overall (16 pieces): pieces were shown, then a restart */
    memset(&s, 0, sizeof s);
    assert_int_equal(el_router_ask(r, &q, on_route, &s, &res, NULL), 0);
    assert_string_equal(res.tier, "cloud");
    assert_non_null(strstr(res.fallback, "not finished within the 1000 ms deadline"));
    assert_int_equal(res.restarts, 1);
    assert_int_equal(s.restarts, 1);
    assert_string_equal(s.text, "You said: a question with a fairly long answer"); /* only the cloud's answer */
    el_route_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 2);
    el_router_close(r);
    el_policy_free(&pol);
}

/* ---- cloud fallbacks (offline operation) ---- */

static void test_cloud_failures_go_local(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    el_policy pol;
    policy_opts o = defaults();
    o.retries = 1;
    o.breaker = 5;
    el_router *r = open_router(o, &pol);
    el_chat_msg m[] = {{"user", "hard question"}};
    el_route_request q = ask(m, 2000); /* long: the cloud's job */
    el_route_result res;
    el_err err;
    struct {
        const char *steps, *dflt, *reason;
        int upstream;
    } cases[] = {
        {"[]", "500", "HTTP 500", 2},
        {"[\"429:60\"]", "ok", "Retry-After 60", 1}, /* longer than retry_after_max_ms */
        {"[\"429\", \"429\"]", "ok", "HTTP 429", 2},   /* rate-limited past its retries */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_script(&FAKE, cases[i].steps, cases[i].dflt);
        assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), 0);
        assert_string_equal(res.tier, "small");
        assert_true(res.local);
        if (!strstr(res.fallback, cases[i].reason)) fail_msg("case %zu: %s", i, res.fallback);
        if (fake_count(&FAKE) != cases[i].upstream) fail_msg("case %zu: %d requests: %s", i, fake_count(&FAKE), res.fallback);
        el_route_result_free(&res);
    }
    /* 5 failed attempts so far (429s count) = breaker_threshold: the circuit is open and
     * the cloud is skipped without a request. */
    fake_script(&FAKE, "[]", "ok");
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), 0);
    assert_string_equal(res.tier, "small");
    assert_non_null(strstr(res.fallback, "circuit open"));
    assert_int_equal(fake_count(&FAKE), 0);
    el_route_result_free(&res);
    el_router_close(r);
    el_policy_free(&pol);

    /* Unreachable provider. */
    o = defaults();
    o.base_url = "http://127.0.0.1:1/v1";
    r = open_router(o, &pol);
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), 0);
    assert_string_equal(res.tier, "small");
    assert_non_null(strstr(res.fallback, "cloud: provider 'cloud'"));
    el_route_result_free(&res);
    el_router_close(r);
    el_policy_free(&pol);
}

static void test_cut_stream_restarts_locally(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    fake_script(&FAKE, "[]", "cut");
    el_policy pol;
    el_router *r = open_router(defaults(), &pol);
    el_chat_msg m[] = {{"user", "tell me a long story"}};
    el_route_request q = ask(m, 2000);
    el_route_result res;
    seen s = {"", 0};
    assert_int_equal(el_router_ask(r, &q, on_route, &s, &res, NULL), 0);
    assert_string_equal(res.tier, "small");
    assert_int_equal(s.restarts, 1);
    assert_string_equal(s.text, "local small.gguf: You said: tell me a long story");
    assert_string_equal(res.text, s.text);
    assert_int_equal(fake_count(&FAKE), 1); /* not retried: the caller had seen part of it */
    el_route_result_free(&res);
    el_router_close(r);
    el_policy_free(&pol);
}

static void test_budget_spent_means_local_only(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    fake_script(&FAKE, "[]", "ok");
    char path[512];
    snprintf(path, sizeof path, "%s/budget.sqlite", TMP);
    el_ledger *l = el_ledger_open(path, NULL);
    assert_non_null(l);
    el_ledger_row row = {el_wall_s(), "cloud", "fake-model", "cloud", 1000, 1000, 10, 5, 6.0, "", "ok", ""};
    assert_int_equal(el_ledger_record(l, &row, NULL), 0);
    el_ledger_close(l);
    el_policy pol;
    policy_opts o = defaults();
    o.budget = 5;
    o.ledger_name = "budget.sqlite";
    el_router *r = open_router(o, &pol);
    el_chat_msg m[] = {{"user", "long one"}};
    el_route_request q = ask(m, 2000);
    el_route_result res;
    el_err err;
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), 0);
    assert_string_equal(res.tier, "small");
    assert_non_null(strstr(res.fallback, "monthly budget of $5.00 spent"));
    el_route_result_free(&res);
    ENGINE.fail_run_path = "gguf";
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_EBUDGET);
    assert_string_equal(res.tier, "");
    el_route_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 0);
    el_router_close(r);
    el_policy_free(&pol);
    assert_int_equal(ledger_rows("budget.sqlite"), 3); /* the seed row, one answer, one failure */
}

static void test_strategies_local_and_cloud(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    fake_script(&FAKE, "[]", "500");
    el_policy pol;
    policy_opts o = defaults();
    o.strategy = "cloud";
    o.retries = 0;
    el_router *r = open_router(o, &pol);
    el_chat_msg m[] = {{"user", "x"}};
    el_route_request q = ask(m, 20);
    el_route_result res;
    el_err err;
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), -1); /* no local fallback */
    assert_int_equal(err.code, EDGELLM_ESERVER);
    assert_int_equal(ENGINE.generates, 0);
    el_route_result_free(&res);
    el_router_close(r);
    el_policy_free(&pol);

    fake_script(&FAKE, "[]", "ok");
    o.strategy = "local";
    r = open_router(o, &pol);
    q = ask(m, 5000);
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), 0);
    assert_true(res.local);
    el_route_result_free(&res);
    assert_int_equal(fake_count(&FAKE), 0);
    el_router_close(r);
    el_policy_free(&pol);
}

/* ---- lifecycle and admission ---- */

typedef struct job {
    el_router *r;
    el_route_request q;
    el_chat_msg m;
    char question[64];
    el_route_result res;
    el_err err;
    int rc;
} job;

static void *job_main(void *arg) {
    job *j = arg;
    j->rc = el_router_ask(j->r, &j->q, NULL, NULL, &j->res, &j->err);
    return NULL;
}

static void job_start(job *j, el_router *r, int i, int max_tokens, pthread_t *th) {
    memset(j, 0, sizeof *j);
    j->r = r;
    snprintf(j->question, sizeof j->question, "question %d", i);
    j->m.role = "user";
    j->m.content = j->question;
    j->q = ask(&j->m, max_tokens);
    pthread_create(th, NULL, job_main, j);
}

static void test_lazy_shared_load_and_keep_alive(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    ENGINE.load_ms = 200; /* so the concurrent requests arrive while it loads */
    el_policy pol;
    policy_opts o = defaults();
    o.keep_alive_s = 1.0;
    el_router *r = open_router(o, &pol);
    assert_false(el_router_is_loaded(r, "small")); /* lazy: nothing loaded yet */
    enum { N = 4 };
    job jobs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) job_start(&jobs[i], r, i, 50, &th[i]);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        assert_string_equal(jobs[i].res.tier, "small");
        char expect[128];
        snprintf(expect, sizeof expect, "local small.gguf: You said: question %d", i);
        assert_string_equal(jobs[i].res.text, expect); /* each caller got its own answer */
        el_route_result_free(&jobs[i].res);
    }
    assert_int_equal(ENGINE.loads, 1); /* one load shared by four requests */
    assert_int_equal(ENGINE.generates, N);
    /* After keep_alive_s idle it is unloaded (poll, no timing threshold). */
    for (int i = 0; i < 500 && el_router_is_loaded(r, "small"); i++) el_sleep_ms(10);
    assert_false(el_router_is_loaded(r, "small"));
    assert_int_equal(ENGINE.unloads, 1);
    el_router_close(r);
    el_policy_free(&pol);
}

static void wait_for(el_router *r, int running, int waiting) {
    int rn = -1, wt = -1;
    for (int i = 0; i < 1000; i++) {
        el_router_tier_load(r, "small", &rn, &wt);
        if (rn == running && wt == waiting) return;
        el_sleep_ms(5);
    }
    fail_msg("tier never reached %d running / %d waiting (%d/%d)", running, waiting, rn, wt);
}

static void test_bounded_queue_busy(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    ENGINE.prefill_ms = 1500; /* long enough that the first job is still running when we probe */
    el_policy pol;
    policy_opts o = defaults();
    o.strategy = "local";
    o.small_concurrent = 1;
    o.small_queue = 1;
    o.small_queue_ms = 10000;
    el_router *r = open_router(o, &pol);
    /* 'medium' cannot load, so the busy 'small' is the only tier that could answer. */
    ENGINE.fail_load_path = "medium";
    job a, b;
    pthread_t ta, tb;
    job_start(&a, r, 1, 50, &ta);
    wait_for(r, 1, 0);
    job_start(&b, r, 2, 50, &tb);
    wait_for(r, 1, 1);
    el_chat_msg m[] = {{"user", "third"}};
    el_route_request q = ask(m, 50);
    el_route_result res;
    el_err err;
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), -1);
    assert_non_null(strstr(res.fallback, "small: busy: 1 running, 1 waiting, queue of 1 full"));
    assert_non_null(strstr(res.fallback, "medium: fake engine"));
    el_route_result_free(&res);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0); /* the queued one ran after the first */
    el_route_result_free(&a.res);
    el_route_result_free(&b.res);
    el_router_close(r);
    el_policy_free(&pol);

    /* A queue deadline: the waiter gives up with EBUSY. One local tier only. */
    const char *one = "{\"strategy\": \"local\", \"tiers\": [{\"name\": \"small\", \"kind\": \"local\","
                      " \"model\": \"/models/small.gguf\", \"max_concurrent\": 1, \"queue\": 4,"
                      " \"queue_timeout_ms\": 50, \"keep_alive_s\": -1}]}";
    assert_int_equal(el_policy_parse(one, NULL, "(test)", &pol, &err), 0);
    r = el_router_open(&pol, &BACKEND, &err);
    assert_non_null(r);
    job_start(&a, r, 1, 50, &ta);
    wait_for(r, 1, 0);
    assert_int_equal(el_router_ask(r, &q, NULL, NULL, &res, &err), -1);
    assert_int_equal(err.code, EDGELLM_EBUSY);
    assert_non_null(strstr(err.message, "after waiting 50 ms in the queue"));
    el_route_result_free(&res);
    pthread_join(ta, NULL);
    assert_int_equal(a.rc, 0);
    el_route_result_free(&a.res);
    el_router_close(r);
    el_policy_free(&pol);
}

static void test_concurrent_mixed_requests_each_answered_once(void **state) {
    (void)state;
    engine_reset();
    set_memory(8000, -1, 0);
    fake_script(&FAKE, "[]", "ok");
    el_policy pol;
    policy_opts o = defaults();
    o.ledger_name = "mixed.sqlite";
    el_router *r = open_router(o, &pol);
    enum { N = 12 };
    job jobs[N];
    pthread_t th[N];
    static const int sizes[] = {50, 300, 2000};
    for (int i = 0; i < N; i++) job_start(&jobs[i], r, i, sizes[i % 3], &th[i]);
    int cloud = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        char q[64];
        snprintf(q, sizeof q, "You said: question %d", i);
        assert_non_null(strstr(jobs[i].res.text, q));
        cloud += !jobs[i].res.local;
        el_route_result_free(&jobs[i].res);
    }
    assert_int_equal(cloud, N / 3);
    assert_int_equal(fake_count(&FAKE), N / 3);
    el_router_close(r);
    el_policy_free(&pol);
    assert_int_equal(ledger_rows("mixed.sqlite"), N);
}

static void test_ledger_usage_and_forecast(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/usage.sqlite", TMP);
    el_ledger *l = el_ledger_open(path, NULL);
    assert_non_null(l);
    /* 2026-02-10 12:00 UTC and the day after; February 2026 has 28 days. */
    double d1 = 1770724800.0, d2 = d1 + 86400;
    el_ledger_row rows[] = {
        {d1, "small", "m", "local", 10, 20, 100, 10, 0, "", "ok", ""},
        {d1, "cloud", "c", "cloud", 100, 200, 900, 90, 0.5, "", "ok", ""},
        {d1 + 60, "cloud", "c", "cloud", 100, 100, 700, 70, 0.25, "small: busy", "ok", ""},
        {d2, "none", "", "none", 0, 0, 5, 0, 0, "small: x", "timeout", "no tier"},
    };
    for (size_t i = 0; i < 4; i++) assert_int_equal(el_ledger_record(l, &rows[i], NULL), 0);
    el_usage_row *u;
    size_t n;
    assert_int_equal(el_ledger_usage(l, 0, &u, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_string_equal(u[0].day, "2026-02-10");
    assert_string_equal(u[0].tier, "cloud");
    assert_int_equal(u[0].requests, 2);
    assert_int_equal(u[0].fallbacks, 1);
    assert_int_equal(u[0].tokens_out, 300);
    assert_true(u[0].cost_usd == 0.75);
    assert_true(u[0].avg_latency_ms == 800);
    assert_string_equal(u[2].day, "2026-02-11");
    assert_int_equal(u[2].failed, 1);
    free(u);
    double month, forecast;
    /* On 2026-02-14 00:00 UTC: 13 days elapsed, $0.75 spent -> 0.75 / 13 * 28. */
    assert_int_equal(el_ledger_forecast(l, 1771027200.0, &month, &forecast, NULL), 0);
    assert_true(month == 0.75);
    assert_true(forecast > 1.6153 && forecast < 1.6154);
    /* In March nothing is spent yet. */
    assert_int_equal(el_ledger_month_cost(l, 1772409600.0, &month, NULL), 0);
    assert_true(month == 0);
    el_ledger_close(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_readers),
        cmocka_unit_test(test_policy_files),
        cmocka_unit_test(test_hybrid_tier_choice),
        cmocka_unit_test(test_not_enough_memory_goes_to_next_tier),
        cmocka_unit_test(test_low_memory_unloads_idle_models),
        cmocka_unit_test(test_load_and_run_failures_go_to_next_tier),
        cmocka_unit_test(test_local_deadlines_go_to_cloud),
        cmocka_unit_test(test_cloud_failures_go_local),
        cmocka_unit_test(test_cut_stream_restarts_locally),
        cmocka_unit_test(test_budget_spent_means_local_only),
        cmocka_unit_test(test_strategies_local_and_cloud),
        cmocka_unit_test(test_lazy_shared_load_and_keep_alive),
        cmocka_unit_test(test_bounded_queue_busy),
        cmocka_unit_test(test_concurrent_mixed_requests_each_answered_once),
        cmocka_unit_test(test_ledger_usage_and_forecast),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests_name("router", tests, setup_all, teardown_all);
    curl_global_cleanup();
    return failed;
}
