#include "router/router.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/clock.h"
#include "router/ledger.h"
#include "router/memory.h"

typedef struct tier_rt {
    const el_tier_policy *pol;
    el_cloud *cloud;
    /* local model lifecycle */
    void *model;
    int loading;
    int users;
    double last_used_ms;
    unsigned load_gen;
    int last_load_failed;
    el_err load_err;
    /* admission */
    int running;
    int waiting;
    pthread_cond_t cv; /* a slot freed or a load finished */
} tier_rt;

struct el_router {
    el_policy pol;
    el_local_backend backend;
    int has_backend;
    tier_rt *tiers;
    el_ledger *ledger;
    pthread_mutex_t mu;
    pthread_cond_t reaper_cv;
    pthread_t reaper;
    int reaper_started;
    int closing;
};

void el_route_result_free(el_route_result *r) {
    if (!r) return;
    free(r->text);
    r->text = NULL;
}

/* ---- lifecycle: lazy load, shared load, keep-alive, unload under memory pressure ---- */

/* Caller holds mu. */
static void unload_locked(el_router *r, tier_rt *t) {
    if (t->model && r->has_backend) r->backend.unload(r->backend.ctx, t->model);
    t->model = NULL;
}

/* Unloads every idle local model except keep (caller holds mu); returns how many. */
static int unload_idle_locked(el_router *r, const tier_rt *keep) {
    int n = 0;
    for (size_t i = 0; i < r->pol.n_tiers; i++) {
        tier_rt *t = &r->tiers[i];
        if (t != keep && t->model && t->users == 0 && !t->loading) {
            unload_locked(r, t);
            n++;
        }
    }
    return n;
}

static void *reaper_main(void *arg) {
    el_router *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->closing) {
        double now = el_mono_ms(), next = 1000;
        for (size_t i = 0; i < r->pol.n_tiers; i++) {
            tier_rt *t = &r->tiers[i];
            double keep = t->pol->keep_alive_s * 1e3;
            if (t->pol->kind != EL_TIER_LOCAL || !t->model || t->users || t->loading || keep <= 0) continue;
            double idle = now - t->last_used_ms;
            if (idle >= keep) unload_locked(r, t);
            else if (keep - idle < next) next = keep - idle;
        }
        if (next < 5) next = 5;
        struct timespec dl = el_deadline_in(next);
        pthread_cond_timedwait(&r->reaper_cv, &r->mu, &dl);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Memory the idle local models other than keep hold (caller holds mu). */
static int64_t idle_bytes_locked(const el_router *r, const tier_rt *keep) {
    int64_t sum = 0;
    for (size_t i = 0; i < r->pol.n_tiers; i++) {
        const tier_rt *t = &r->tiers[i];
        if (t != keep && t->model && t->users == 0 && !t->loading) sum += t->pol->memory_bytes;
    }
    return sum;
}

static int memory_room(el_router *r, tier_rt *t, el_err *err) {
    int64_t need = t->pol->memory_bytes;
    if (need <= 0) return 0;
    el_mem_info mi;
    if (el_mem_read(r->pol.sysroot, &mi, err)) return -1;
    if (mi.usable < 0 || need <= mi.usable) return 0;
    /* Low on memory: if unloading the idle models would make room, they go. */
    if (need <= mi.usable + idle_bytes_locked(r, t) && unload_idle_locked(r, t) > 0) {
        if (el_mem_read(r->pol.sysroot, &mi, err)) return -1;
        if (mi.usable < 0 || need <= mi.usable) return 0;
    }
    char cg[96] = "no cgroup limit";
    if (mi.cgroup_limit >= 0)
        snprintf(cg, sizeof cg, "cgroup v%d room %lld MiB", mi.cgroup_version,
                 (long long)((mi.cgroup_limit - (mi.cgroup_usage > 0 ? mi.cgroup_usage : 0)) >> 20));
    return el_fail(err, EDGELLM_ENOMEM, "not enough memory to load it: needs %lld MiB, MemAvailable %lld MiB, %s",
                   (long long)(need >> 20), (long long)(mi.mem_available >> 20), cg);
}

static void *model_acquire(el_router *r, tier_rt *t, el_err *err) {
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (t->model) {
            t->users++;
            pthread_mutex_unlock(&r->mu);
            return t->model;
        }
        if (!t->loading) break;
        unsigned gen = t->load_gen;
        while (t->loading) pthread_cond_wait(&t->cv, &r->mu);
        if (!t->model && t->load_gen != gen && t->last_load_failed) { /* share the one load's failure */
            *err = t->load_err;
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
    }
    if (memory_room(r, t, err)) {
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    t->loading = 1;
    pthread_mutex_unlock(&r->mu);
    el_err e = {0};
    const el_tier_policy *p = t->pol;
    void *m = r->backend.load(r->backend.ctx, p->model_path, p->threads, p->context, &e);
    if (!m && e.message[0] == '\0') el_fail(&e, EDGELLM_EIO, "the engine could not load '%s'", p->model_path);
    pthread_mutex_lock(&r->mu);
    t->loading = 0;
    t->load_gen++;
    if (m) {
        t->model = m;
        t->users++;
        t->last_load_failed = 0;
    } else {
        t->last_load_failed = 1;
        t->load_err = e;
    }
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&r->mu);
    if (!m) *err = e;
    return m;
}

static void model_release(el_router *r, tier_rt *t) {
    pthread_mutex_lock(&r->mu);
    t->users--;
    t->last_used_ms = el_mono_ms();
    if (t->users == 0 && t->pol->keep_alive_s == 0) unload_locked(r, t);
    pthread_cond_signal(&r->reaper_cv);
    pthread_mutex_unlock(&r->mu);
}

int el_router_is_loaded(el_router *r, const char *tier) {
    int loaded = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->pol.n_tiers; i++)
        if (!strcmp(r->pol.tiers[i].name, tier)) loaded = r->tiers[i].model != NULL;
    pthread_mutex_unlock(&r->mu);
    return loaded;
}

int el_router_unload_idle(el_router *r) {
    pthread_mutex_lock(&r->mu);
    int n = unload_idle_locked(r, NULL);
    pthread_mutex_unlock(&r->mu);
    return n;
}

int el_router_tier_load(el_router *r, const char *tier, int *running, int *waiting) {
    int found = -1;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->pol.n_tiers; i++)
        if (!strcmp(r->pol.tiers[i].name, tier)) {
            *running = r->tiers[i].running;
            *waiting = r->tiers[i].waiting;
            found = 0;
        }
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* ---- admission: bounded running jobs, bounded queue with a deadline ---- */

static int slot_acquire(el_router *r, tier_rt *t, el_err *err) {
    const el_tier_policy *p = t->pol;
    pthread_mutex_lock(&r->mu);
    if (t->running < p->max_concurrent) {
        t->running++;
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    if (t->waiting >= p->queue) {
        int running = t->running, waiting = t->waiting;
        pthread_mutex_unlock(&r->mu);
        return el_fail(err, EDGELLM_EBUSY, "busy: %d running, %d waiting, queue of %d full", running, waiting,
                       p->queue);
    }
    t->waiting++;
    struct timespec dl = el_deadline_in(p->queue_timeout_ms);
    int timed_out = 0;
    while (t->running >= p->max_concurrent && !timed_out)
        if (pthread_cond_timedwait(&t->cv, &r->mu, &dl) == ETIMEDOUT) timed_out = t->running >= p->max_concurrent;
    t->waiting--;
    if (!timed_out) t->running++;
    pthread_mutex_unlock(&r->mu);
    if (timed_out)
        return el_fail(err, EDGELLM_EBUSY, "busy: still %d running after waiting %.0f ms in the queue",
                       p->max_concurrent, p->queue_timeout_ms);
    return 0;
}

static void slot_release(el_router *r, tier_rt *t) {
    pthread_mutex_lock(&r->mu);
    t->running--;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---- running one tier ---- */

typedef struct run {
    el_router *r;
    el_route_fn on_piece;
    void *ud;
    double t_req;            /* request start */
    double t_gen;            /* start of this tier's generation */
    double ttft_deadline, total_deadline;
    int pieces;              /* of this tier */
    int *streamed;           /* pieces the caller has seen since the last restart */
    double ttft_ms;
    int missed;              /* 1: TTFT deadline, 2: total deadline */
    int caller_stopped;
    char *text;
    size_t len, cap;
} run;

static int run_piece(void *ud, const char *piece, size_t n) {
    run *u = ud;
    if (u->total_deadline > 0 && el_mono_ms() - u->t_gen > u->total_deadline) {
        u->missed = 2;
        return 1;
    }
    if (u->len + n + 1 > u->cap) {
        size_t nc = u->cap ? u->cap * 2 : 1024;
        while (nc < u->len + n + 1) nc *= 2;
        char *nb = realloc(u->text, nc);
        if (!nb) return 1;
        u->text = nb;
        u->cap = nc;
    }
    memcpy(u->text + u->len, piece, n);
    u->len += n;
    u->text[u->len] = '\0';
    if (u->pieces++ == 0) u->ttft_ms = el_mono_ms() - u->t_req;
    (*u->streamed)++;
    if (u->on_piece && u->on_piece(u->ud, EL_ROUTE_PIECE, piece, n)) {
        u->caller_stopped = 1;
        return 1;
    }
    return 0;
}

static int run_should_abort(void *ud) {
    run *u = ud;
    double el = el_mono_ms() - u->t_gen;
    if (u->pieces == 0 && u->ttft_deadline > 0 && el > u->ttft_deadline) {
        u->missed = 1;
        return 1;
    }
    if (u->total_deadline > 0 && el > u->total_deadline) {
        u->missed = 2;
        return 1;
    }
    return u->caller_stopped;
}

static int estimate_tokens(const el_route_request *q) {
    size_t bytes = 0;
    for (size_t i = 0; i < q->n_messages; i++) bytes += q->messages[i].content ? strlen(q->messages[i].content) : 0;
    return (int)(bytes / 4 + 1);
}

static int run_local(el_router *r, tier_rt *t, const el_route_request *q, run *u, el_route_result *out,
                     el_err *err) {
    if (!r->has_backend) return el_fail(err, EDGELLM_EUNSUPPORTED, "no local engine is wired into this build");
    void *model = model_acquire(r, t, err);
    if (!model) return -1;
    el_gen_params gp = {q->max_tokens, q->temperature, q->stop, q->n_stop, 0};
    el_local_callbacks cb = {run_piece, run_should_abort, u};
    el_local_usage usage = {-1, -1};
    u->t_gen = el_mono_ms();
    u->ttft_deadline = r->pol.local_ttft_deadline_ms;
    u->total_deadline = r->pol.local_total_deadline_ms;
    el_err e = {0};
    int rc = r->backend.generate(r->backend.ctx, model, q->messages, q->n_messages, &gp, &cb, &usage, &e);
    model_release(r, t);
    if (u->missed == 1)
        return el_fail(err, EDGELLM_ETIMEOUT, "no first token within the %.0f ms TTFT deadline", u->ttft_deadline);
    if (u->missed == 2)
        return el_fail(err, EDGELLM_ETIMEOUT, "answer not finished within the %.0f ms deadline", u->total_deadline);
    if (u->caller_stopped) return el_fail(err, EDGELLM_ECANCELLED, "the caller stopped the answer");
    if (rc) {
        *err = e;
        if (!err->message[0]) el_fail(err, EDGELLM_EIO, "generation failed");
        return -1;
    }
    out->tokens_in = usage.tokens_in >= 0 ? usage.tokens_in : estimate_tokens(q);
    out->tokens_out = usage.tokens_out >= 0 ? usage.tokens_out : (int)(u->len / 4);
    snprintf(out->model, sizeof out->model, "%s", t->pol->model_path);
    out->local = 1;
    out->cost_usd = 0;
    return 0;
}

static int cloud_piece(void *ud, const char *piece, size_t n) { return run_piece(ud, piece, n); }

static int run_cloud(el_router *r, tier_rt *t, const el_route_request *q, run *u, el_route_result *out,
                     el_err *err) {
    (void)r;
    el_chat_request cr = {q->messages, q->n_messages, q->max_tokens, q->temperature, q->stop, q->n_stop, 1, 0};
    el_chat_result res;
    u->t_gen = el_mono_ms();
    int rc = el_cloud_chat(t->cloud, &cr, cloud_piece, u, &res, err);
    if (rc == 0) {
        /* Providers that send no usage are charged by estimate (4 bytes a token). */
        out->tokens_in = res.tokens_in >= 0 ? res.tokens_in : estimate_tokens(q);
        out->tokens_out = res.tokens_out >= 0 ? res.tokens_out : (int)(res.text_len / 4 + 1);
        out->from_cache = res.from_cache;
        out->cost_usd = res.from_cache ? 0
                                       : out->tokens_in * t->pol->price_in_per_mtok / 1e6 +
                                             out->tokens_out * t->pol->price_out_per_mtok / 1e6;
        snprintf(out->model, sizeof out->model, "%s", el_cloud_model(t->cloud));
        out->local = 0;
    }
    if (u->caller_stopped && rc) el_fail(err, EDGELLM_ECANCELLED, "the caller stopped the answer");
    el_chat_result_free(&res);
    return rc;
}

/* ---- choosing tiers ---- */

static int find_tier(const el_router *r, const char *name) {
    for (size_t i = 0; i < r->pol.n_tiers; i++)
        if (!strcmp(r->pol.tiers[i].name, name)) return (int)i;
    return -1;
}

static int allowed(const el_router *r, size_t i) {
    el_tier_kind k = r->pol.tiers[i].kind;
    if (r->pol.strategy == EL_STRATEGY_LOCAL) return k == EL_TIER_LOCAL;
    if (r->pol.strategy == EL_STRATEGY_CLOUD) return k == EL_TIER_CLOUD;
    return 1;
}

static int first_of(const el_router *r, el_tier_kind kind) {
    for (size_t i = 0; i < r->pol.n_tiers; i++)
        if (r->pol.tiers[i].kind == kind && allowed(r, i)) return (int)i;
    return -1;
}

/* Index of the first tier to try, and why. */
static int choose_tier(const el_router *r, const el_route_request *q, char *why, size_t n, el_err *err) {
    const char *strat = el_strategy_name(r->pol.strategy);
    if (q->tier_hint && q->tier_hint[0]) {
        int i = find_tier(r, q->tier_hint);
        if (i < 0) return el_fail(err, EDGELLM_EINVAL, "no tier named '%s' in the policy", q->tier_hint);
        if (!allowed(r, (size_t)i))
            return el_fail(err, EDGELLM_EINVAL, "tier '%s' is not allowed by the '%s' strategy", q->tier_hint, strat);
        snprintf(why, n, "%s: the caller asked for tier '%s'", strat, q->tier_hint);
        return i;
    }
    if (r->pol.strategy == EL_STRATEGY_HYBRID && q->quality == EL_QUALITY_HIGH && first_of(r, EL_TIER_CLOUD) >= 0) {
        int i = first_of(r, EL_TIER_CLOUD);
        snprintf(why, n, "hybrid: the caller asked for high quality, so cloud tier '%s'", r->pol.tiers[i].name);
        return i;
    }
    if (r->pol.strategy == EL_STRATEGY_HYBRID && q->quality == EL_QUALITY_LOW && first_of(r, EL_TIER_LOCAL) >= 0) {
        int i = first_of(r, EL_TIER_LOCAL);
        snprintf(why, n, "hybrid: the caller asked for low quality, so local tier '%s'", r->pol.tiers[i].name);
        return i;
    }
    int prompt = estimate_tokens(q);
    if (r->pol.strategy != EL_STRATEGY_CLOUD) {
        for (size_t i = 0; i < r->pol.n_tiers; i++) {
            const el_tier_policy *t = &r->pol.tiers[i];
            if (t->kind != EL_TIER_LOCAL) continue;
            int out_ok = t->max_output_tokens == 0 || (q->max_tokens > 0 && q->max_tokens <= t->max_output_tokens);
            int in_ok = t->max_prompt_tokens == 0 || prompt <= t->max_prompt_tokens;
            if (out_ok && in_ok) {
                snprintf(why, n, "%s: max_tokens %d and prompt ~%d tokens fit local tier '%s' (limits %d/%d)", strat,
                         q->max_tokens, prompt, t->name, t->max_output_tokens, t->max_prompt_tokens);
                return (int)i;
            }
        }
    }
    int c = first_of(r, EL_TIER_CLOUD);
    if (c >= 0) {
        if (r->pol.strategy == EL_STRATEGY_CLOUD) snprintf(why, n, "cloud: strategy is cloud only");
        else
            snprintf(why, n, "hybrid: max_tokens %d / prompt ~%d tokens exceed every local tier, so cloud tier '%s'",
                     q->max_tokens, prompt, r->pol.tiers[c].name);
        return c;
    }
    int l = first_of(r, EL_TIER_LOCAL);
    if (l < 0) return el_fail(err, EDGELLM_EINVAL, "the '%s' strategy leaves no tier to run on", strat);
    snprintf(why, n, "%s: no local tier's limits fit and there is no cloud tier, so '%s'", strat,
             r->pol.tiers[l].name);
    return l;
}

static void add_fallback(el_route_result *out, const char *tier, const char *reason) {
    size_t used = strlen(out->fallback);
    snprintf(out->fallback + used, sizeof out->fallback - used, "%s%s: %s", used ? "; " : "", tier, reason);
}

static void record(el_router *r, const el_route_result *out, int rc, const el_err *err, double t_req,
                   el_route_result *w) {
    if (!r->ledger) return;
    el_ledger_row row = {el_wall_s(),
                         out->tier[0] ? out->tier : "none",
                         out->model,
                         rc ? "none" : (out->local ? "local" : "cloud"),
                         rc ? 0 : out->tokens_in,
                         rc ? 0 : out->tokens_out,
                         el_mono_ms() - t_req,
                         rc ? 0 : out->ttft_ms,
                         rc ? 0 : out->cost_usd,
                         out->fallback,
                         rc ? edgellm_status_name(err->code) : "ok",
                         rc ? err->message : ""};
    el_err le;
    if (el_ledger_record(r->ledger, &row, &le)) snprintf(w->warning, sizeof w->warning, "%s", le.message);
}

int el_router_ask(el_router *r, const el_route_request *q, el_route_fn on_piece, void *ud, el_route_result *out,
                  el_err *err) {
    el_err local_err;
    if (!err) err = &local_err;
    memset(out, 0, sizeof *out);
    double t_req = el_mono_ms();
    int first = choose_tier(r, q, out->why, sizeof out->why, err);
    if (first < 0) {
        add_fallback(out, "router", err->message);
        record(r, out, -1, err, t_req, out);
        return -1;
    }

    int budget_spent = 0;
    double month = 0;
    if (r->ledger && r->pol.monthly_budget_usd > 0) {
        el_err be;
        if (el_ledger_month_cost(r->ledger, el_wall_s(), &month, &be) == 0)
            budget_spent = month >= r->pol.monthly_budget_usd;
    }

    /* The chosen tier first, then the others in policy order. */
    size_t n = r->pol.n_tiers;
    size_t *order = malloc(n * sizeof *order);
    if (!order) return el_fail(err, EDGELLM_ENOMEM, "router: out of memory");
    size_t k = 0;
    order[k++] = (size_t)first;
    for (size_t i = 0; i < n; i++)
        if ((int)i != first && allowed(r, i)) order[k++] = i;

    int streamed = 0, skip_local = 0, all_busy = 1, tried = 0, budget_blocked = 0;
    int rc = -1;
    el_err last = {0};
    for (size_t j = 0; j < k; j++) {
        tier_rt *t = &r->tiers[order[j]];
        const char *name = t->pol->name;
        if (t->pol->kind == EL_TIER_CLOUD && budget_spent) {
            char why[128];
            snprintf(why, sizeof why, "monthly budget of $%.2f spent ($%.4f this month)", r->pol.monthly_budget_usd,
                     month);
            add_fallback(out, name, why);
            budget_blocked = 1;
            continue;
        }
        if (t->pol->kind == EL_TIER_LOCAL && skip_local) continue; /* a deadline sent us to the cloud */
        if (streamed) {
            if (on_piece) on_piece(ud, EL_ROUTE_RESTART, "", 0);
            out->restarts++;
            streamed = 0;
        }
        tried++;
        el_err e = {0};
        run u = {.r = r, .on_piece = on_piece, .ud = ud, .t_req = t_req, .streamed = &streamed};
        int trc = slot_acquire(r, t, &e);
        if (trc == 0) {
            trc = t->pol->kind == EL_TIER_LOCAL ? run_local(r, t, q, &u, out, &e) : run_cloud(r, t, q, &u, out, &e);
            slot_release(r, t);
        }
        if (trc == 0) {
            out->text = u.text ? u.text : strdup("");
            u.text = NULL;
            out->ttft_ms = u.pieces ? u.ttft_ms : el_mono_ms() - t_req;
            snprintf(out->tier, sizeof out->tier, "%s", name);
            rc = 0;
            break;
        }
        free(u.text);
        if (e.code != EDGELLM_EBUSY) all_busy = 0;
        last = e;
        add_fallback(out, name, e.message);
        if (e.code == EDGELLM_ECANCELLED) break;
        if (t->pol->kind == EL_TIER_LOCAL && e.code == EDGELLM_ETIMEOUT && u.missed) skip_local = 1;
    }
    free(order);
    out->latency_ms = el_mono_ms() - t_req;
    if (rc) {
        edgellm_status code = last.code;
        if (tried > 0 && all_busy) code = EDGELLM_EBUSY;
        else if (budget_blocked && code != EDGELLM_ECANCELLED) code = EDGELLM_EBUDGET;
        if (tried == 0 && !budget_blocked) code = EDGELLM_EUNSUPPORTED;
        el_fail(err, code, "no tier answered: %s", out->fallback);
    }
    record(r, out, rc, err, t_req, out);
    return rc;
}

/* ---- open / close ---- */

el_router *el_router_open(const el_policy *policy, const el_local_backend *backend, el_err *err) {
    el_router *r = calloc(1, sizeof *r);
    if (!r) {
        el_fail(err, EDGELLM_ENOMEM, "router: out of memory");
        return NULL;
    }
    r->pol = *policy;
    r->pol.tiers = calloc(policy->n_tiers, sizeof *r->pol.tiers);
    r->tiers = calloc(policy->n_tiers, sizeof *r->tiers);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->reaper_cv, NULL);
    if (!r->pol.tiers || !r->tiers) {
        el_fail(err, EDGELLM_ENOMEM, "router: out of memory for %zu tiers", policy->n_tiers);
        r->pol.n_tiers = 0;
        el_router_close(r);
        return NULL;
    }
    memcpy(r->pol.tiers, policy->tiers, policy->n_tiers * sizeof *policy->tiers);
    if (backend && backend->load && backend->generate && backend->unload) {
        r->backend = *backend;
        r->has_backend = 1;
    }
    int need_reaper = 0;
    for (size_t i = 0; i < r->pol.n_tiers; i++) {
        tier_rt *t = &r->tiers[i];
        t->pol = &r->pol.tiers[i];
        pthread_cond_init(&t->cv, NULL);
        if (t->pol->kind == EL_TIER_CLOUD) {
            t->cloud = el_cloud_open(&t->pol->cloud, err);
            if (!t->cloud) {
                el_fail_prefix(err, "router: tier '%s'", t->pol->name);
                el_router_close(r);
                return NULL;
            }
        } else if (t->pol->keep_alive_s > 0) {
            need_reaper = 1;
        }
    }
    if (r->pol.ledger_path[0]) {
        r->ledger = el_ledger_open(r->pol.ledger_path, err);
        if (!r->ledger) {
            el_router_close(r);
            return NULL;
        }
    }
    if (need_reaper && r->has_backend) {
        if (pthread_create(&r->reaper, NULL, reaper_main, r)) {
            el_fail(err, EDGELLM_ENOMEM, "router: cannot start the model unloading thread");
            el_router_close(r);
            return NULL;
        }
        r->reaper_started = 1;
    }
    return r;
}

void el_router_close(el_router *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->closing = 1;
    pthread_cond_broadcast(&r->reaper_cv);
    pthread_mutex_unlock(&r->mu);
    if (r->reaper_started) pthread_join(r->reaper, NULL);
    for (size_t i = 0; i < r->pol.n_tiers; i++) {
        tier_rt *t = &r->tiers[i];
        if (!t->pol) continue;
        unload_locked(r, t);
        el_cloud_close(t->cloud);
        pthread_cond_destroy(&t->cv);
    }
    el_ledger_close(r->ledger);
    pthread_cond_destroy(&r->reaper_cv);
    pthread_mutex_destroy(&r->mu);
    free(r->tiers);
    free(r->pol.tiers);
    free(r);
}
