/* The worker chains' compiled kernels: `run`, the S3 tails (this comment), `s2_run`, one
 * chain's run of S2 steps, and `walk`, the walk of one chain for a budget (each with its own
 * comment further down); they share the buffer checks and the exact sums.
 *
 * The S3 tails of `planner.s3_batch.S3Batch.tails`, compiled: `run(batch, counts, t, memory,
 * rec_stage, rec_ratio, rec_rate, rec_memory)` takes, row after row, the steps t, t+1, … that
 * `S3Batch._numpy_step` takes in lock-step over the rows, on the same arrays, with the same
 * floating-point operations in the same order, so that the records and every entry of the batch
 * that is read again are the same bit for bit (tests/planner/test_s3_kernel.py). That numpy code
 * is the reference and the fallback; this file only makes it fast (docs/planner.md §8). It does
 * less than numpy where that cannot show: it keeps `met`/`share` of each row's own open columns
 * (numpy: of every column open in any row of the batch; a closed column is never read again),
 * and skips entries whose `met` does not change (their `share` would be written with the value
 * it holds).
 *
 * Why the bits match:
 *  - the loss of S3 at stage k is `((0 + t_0·s_0k) + t_1·s_1k) + … + own_k`, the order numpy's
 *    einsum sums in (terms with i ≥ k add exact zeros, so they are skipped);
 *  - the ratio is `nbytes/lost` where lost > 0, else +inf or 0 exactly as `ratios` says (numpy's
 *    fast path divides only when every loss is positive, which gives the same values);
 *  - the argmax keeps the first maximum, as numpy's does;
 *  - `omit` divides `1/LCM` by the same integer factor, looks up the same tables, and forms
 *    terms and own losses with the same products in the same order;
 *  - rates are exactly rounded sums, the algorithm of CPython's `math.fsum` (which the numpy
 *    path's `exact_sums` matches bit for bit).
 * It must be compiled without fast-math and without FMA contraction (setup.py:
 * -O2 -fno-fast-math -ffp-contract=off).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *name;
    char kind;  /* 'd' float64, 'q' int64, '?' bool */
    int writable;
} Field;

/* The batch's arrays the step reads or writes (S3Batch attributes), all C-contiguous. */
enum {
    F_P, F_COLM, F_COEFF, F_NBYTES, F_SAVED, F_G, F_INV_LCM, F_TERMS, F_LAST_G, F_OWN,
    F_CLOSED, F_OMITTED, F_SHARE_DIAG, F_MET, F_SHARE_UPPER, F_GCD, F_LCM, F_SHARE, N_FIELDS
};
static const Field FIELDS[N_FIELDS] = {
    {"P", 'q', 0}, {"colm", 'q', 0}, {"coeff", 'd', 0}, {"nbytes", 'd', 0}, {"saved", 'q', 0},
    {"g", 'd', 1}, {"inv_lcm", 'd', 1}, {"terms", 'd', 1}, {"last_g_minus_1", 'd', 0},
    {"own", 'd', 1}, {"closed", '?', 1}, {"omitted", '?', 1}, {"share_diag", 'd', 1},
    {"met", 'q', 1}, {"share_upper", 'd', 1}, {"gcd_flat", 'q', 0}, {"lcm_flat", 'q', 0},
    {"share_flat", 'd', 0},
};

static int kind_matches(const Py_buffer *view, char kind) {
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (kind == 'd') return view->itemsize == 8 && strcmp(f, "d") == 0;
    if (kind == 'q') return view->itemsize == 8 && (strcmp(f, "q") == 0 || strcmp(f, "l") == 0);
    return view->itemsize == 1 && strcmp(f, "?") == 0;
}

/* A C-contiguous buffer of `kind` with `count` items (count < 0: any), or -1 with an error set. */
static int get_buffer(PyObject *obj, const char *name, char kind, int writable, Py_ssize_t count,
                      Py_buffer *view) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (!kind_matches(view, kind) || (count >= 0 && view->len != count * view->itemsize)) {
        PyErr_Format(PyExc_ValueError, "_s3_kernel: %s has the wrong type or size", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* CPython's math.fsum (Shewchuk's partials, then half-even rounding across them), for finite
 * terms: the exactly rounded sum. Returns 0 and sets an error if a partial sum overflows. */
static int fsum(const double *x, Py_ssize_t n, double *out) {
    double p[64];  /* non-overlapping partials: at most ~40 for finite doubles */
    Py_ssize_t np_ = 0;
    for (Py_ssize_t q = 0; q < n; q++) {
        double v = x[q];
        Py_ssize_t i = 0;
        for (Py_ssize_t j = 0; j < np_; j++) {
            double y = p[j];
            if (fabs(v) < fabs(y)) { double s = v; v = y; y = s; }
            double hi = v + y;
            double lo = y - (hi - v);
            if (lo != 0.0) p[i++] = lo;
            v = hi;
        }
        np_ = i;
        if (v != 0.0) {
            if (!isfinite(v) || np_ >= 64) {
                PyErr_SetString(PyExc_OverflowError, "_s3_kernel: rate sum overflows");
                return 0;
            }
            p[np_++] = v;
        }
    }
    double hi = 0.0, lo = 0.0;
    if (np_ > 0) {
        hi = p[--np_];
        while (np_ > 0) {  /* from the top, until the sum becomes inexact */
            double v = hi, y = p[--np_];
            hi = v + y;
            lo = y - (hi - v);
            if (lo != 0.0) break;
        }
        if (np_ > 0 && ((lo < 0.0 && p[np_ - 1] < 0.0) || (lo > 0.0 && p[np_ - 1] > 0.0))) {
            double y = lo * 2.0, v = hi + y;
            if (y == v - hi) hi = v;  /* half-even rounding across the partials */
        }
    }
    *out = hi;
    return 1;
}

/* sums[k] += term·s[k] for k in [from, to): independent columns, so the compiler may vectorise it
 * without changing a bit (no reassociation, no FMA). */
static void add_scaled(double *restrict sums, const double *restrict s, double term, Py_ssize_t from,
                       Py_ssize_t to) {
    for (Py_ssize_t k = from; k < to; k++) sums[k] += term * s[k];
}

/* The exactly rounded sum (= fsum) at a fraction of its cost: a sum in double-double (TwoSum per
 * term: Σx = s + Σe exactly, Σe summed in double within n²u²·Σ|x|, u = 2^-53), whose rounding
 * r = fl(s + c) is the exact sum's unless that lies within the error bound of a rounding
 * boundary; those few sums go to `fsum`. */
static int exact_sum(const double *x, Py_ssize_t n, double *out) {
    double s = 0.0, c = 0.0, a = 0.0;
    for (Py_ssize_t j = 0; j < n; j++) {
        const double v = x[j], t = s + v, vv = t - s;
        c += (s - (t - vv)) + (v - vv);
        s = t;
        a += fabs(v);
    }
    const double r = s + c, cc = r - s, e = (s - (r - cc)) + (c - cc);  /* s + c = r + e exactly */
    const double bound = (double)n * (double)n * 0x1p-104 * a;
    if (r != 0.0 && isfinite(a)) {
        const double above = nextafter(r, INFINITY) - r, below = r - nextafter(r, -INFINITY);
        if (isfinite(above) && isfinite(below) && e + bound < above / 2 && bound - e < below / 2) {
            *out = r;
            return 1;
        }
    }
    return fsum(x, n, out);
}

/* `run`: row c takes counts[c] steps from step t, one row after the other (rows are independent,
 * so the order changes no bit of what lock-steps would give, and each row's matrices stay in
 * cache through its steps). */
static PyObject *run(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *batch, *mem_obj, *stage_obj, *ratio_obj, *rate_obj, *recmem_obj, *counts_obj;
    Py_ssize_t t;
    if (!PyArg_ParseTuple(args, "OOnOOOOO", &batch, &counts_obj, &t, &mem_obj, &stage_obj, &ratio_obj, &rate_obj,
                          &recmem_obj))
        return NULL;
    Py_buffer v[N_FIELDS + 6];
    int got = 0, ok = 0;
    Py_ssize_t C = -1, W = -1;
    double *lost = NULL;  /* one row's sums of the losses, per column */
    int64_t *with_m = NULL;  /* gcd(m, P-k) per column, for the row's m */
    for (; got < N_FIELDS; got++) {
        PyObject *arr = PyObject_GetAttrString(batch, FIELDS[got].name);
        if (arr == NULL) goto done;
        Py_ssize_t count = -1;  /* P and colm give C and W; the tables are checked below */
        if (got >= F_COEFF && got <= F_SHARE_DIAG) count = C * W;
        else if (got == F_MET || got == F_SHARE_UPPER) count = C * W * W;
        int bad = get_buffer(arr, FIELDS[got].name, FIELDS[got].kind, FIELDS[got].writable, count, &v[got]);
        Py_DECREF(arr);
        if (bad) goto done;
        if (got == F_P) C = v[F_P].len / 8;
        if (got == F_COLM) {
            W = C > 0 ? v[F_COLM].len / 8 / C : 0;
            if (C > 0 && v[F_COLM].len != C * W * 8) {
                PyErr_SetString(PyExc_ValueError, "_s3_kernel: colm is not rows × width");
                got++;
                goto done;
            }
        }
    }
    if (get_buffer(counts_obj, "counts", 'q', 0, C, &v[got]) < 0) goto done;
    got++;
    const int64_t *counts = v[N_FIELDS].buf;
    PyObject *rec[5] = {mem_obj, stage_obj, ratio_obj, rate_obj, recmem_obj};
    const char rec_kind[5] = {'q', 'q', 'd', 'd', 'q'};
    static const char *rec_name[5] = {"memory", "rec_stage", "rec_ratio", "rec_rate", "rec_memory"};
    const int R = N_FIELDS + 1;  /* the records' buffers */
    for (int r = 0; r < 5; r++, got++)
        if (get_buffer(rec[r], rec_name[r], rec_kind[r], 1, -1, &v[got]) < 0) goto done;
    Py_ssize_t steps = C > 0 ? v[R + 1].len / 8 / C : 0;
    if (v[R].len != C * 8 || t < 0) {
        PyErr_SetString(PyExc_ValueError, "_s3_kernel: records do not fit the batch");
        goto done;
    }
    for (Py_ssize_t c = 0; c < C; c++)
        if (t + counts[c] > steps || counts[c] < 0) {
            PyErr_SetString(PyExc_ValueError, "_s3_kernel: records do not fit the steps");
            goto done;
        }
    for (int r = 2; r < 5; r++)
        if (v[R + r].len != C * steps * 8) {
            PyErr_SetString(PyExc_ValueError, "_s3_kernel: records do not fit the batch");
            goto done;
        }
    Py_ssize_t w = 0;
    {
        PyObject *tw = PyObject_GetAttrString(batch, "table_width");
        if (tw == NULL) goto done;
        w = PyLong_AsSsize_t(tw);
        Py_DECREF(tw);
        if (w <= 0 || v[F_GCD].len / 8 != w * w || v[F_LCM].len / 8 != w * w || v[F_SHARE].len / 8 != w * w) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_s3_kernel: tables do not fit their width");
            goto done;
        }
    }

    const int64_t *P = v[F_P].buf, *colm = v[F_COLM].buf, *saved = v[F_SAVED].buf;
    const int64_t *gcd = v[F_GCD].buf, *lcm = v[F_LCM].buf;
    const double *coeff = v[F_COEFF].buf, *nbytes = v[F_NBYTES].buf, *last_g = v[F_LAST_G].buf;
    const double *share_tab = v[F_SHARE].buf;
    double *g = v[F_G].buf, *inv_lcm = v[F_INV_LCM].buf, *terms = v[F_TERMS].buf, *own = v[F_OWN].buf;
    double *share_diag = v[F_SHARE_DIAG].buf, *share_upper = v[F_SHARE_UPPER].buf;
    char *closed = v[F_CLOSED].buf, *omitted = v[F_OMITTED].buf;
    int64_t *met = v[F_MET].buf;
    int64_t *memory = v[R].buf, *rec_stage = v[R + 1].buf, *rec_memory = v[R + 4].buf;
    double *rec_ratio = v[R + 2].buf, *rec_rate = v[R + 3].buf;

    for (Py_ssize_t c = 0; c < C; c++)
        if (P[c] < 1 || P[c] > W || W >= w) {  /* every look-up below stays inside its table */
            PyErr_SetString(PyExc_ValueError, "_s3_kernel: stage counts do not fit the batch");
            goto done;
        }
    lost = PyMem_Malloc(sizeof(double) * (size_t)W);
    with_m = PyMem_Malloc(sizeof(int64_t) * (size_t)W);
    if (lost == NULL || with_m == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < C; c++) {
        for (Py_ssize_t tt = t; tt < t + counts[c]; tt++) {
            const Py_ssize_t row = c * W;
            double *su = share_upper + c * W * W;
            int64_t *mt = met + c * W * W;
            /* The row's own open columns: the losses and the update below need no other (numpy
             * keeps the columns open in any row of the batch; a closed one is never read again). */
            Py_ssize_t first = W, end = 0;
            for (Py_ssize_t kk = 0; kk < W; kk++)
                if (!closed[row + kk]) {
                    if (kk < first) first = kk;
                    end = kk + 1;
                }
            /* Losses, row by row of `share_upper` (contiguous, one pass): each column's sum still
             * takes its terms in stage order; terms with i ≥ k add exact zeros and are skipped. */
            for (Py_ssize_t kk = first; kk < end; kk++) lost[kk] = 0.0;
            for (Py_ssize_t i = 0; i + 1 < end; i++)
                add_scaled(lost, su + i * W, terms[row + i], i + 1 > first ? i + 1 : first, end);
            /* The best S3 step of the row: the largest ratio, ties to the lowest stage. */
            Py_ssize_t k = -1;
            double best = -INFINITY;
            for (Py_ssize_t kk = first; kk < end; kk++) {
                if (closed[row + kk]) continue;
                double lost_k = lost[kk] + own[row + kk], saved_bytes = nbytes[row + kk];
                double r = lost_k > 0.0 ? saved_bytes / lost_k : ((saved_bytes > 0.0 || lost_k < 0.0) ? INFINITY : 0.0);
                if (k < 0 || r > best) { best = r; k = kk; }
            }
            if (k < 0) {
                PyErr_SetString(PyExc_ValueError, "_s3_kernel: a row stepped has no S3 step left");
                goto done;
            }
            rec_ratio[c * steps + tt] = best;
            rec_stage[c * steps + tt] = k;
            memory[c] -= saved[row + k];
            /* Omit stage k: the LCMs of stages i ≤ k gain the factor m = P-k. */
            const int64_t m = P[c] - k;
            for (Py_ssize_t kk = first; kk < end; kk++) with_m[kk] = gcd[m * w + colm[row + kk]];  /* gcd(m, P-kk) */
            omitted[row + k] = closed[row + k] = 1;
            g[row + k] = 1.0;
            for (Py_ssize_t i = 0; i <= k; i++) {
                const int64_t column = mt[i * W + k];
                if (column == m) continue;
                inv_lcm[row + i] /= (double)(m / column);
                for (Py_ssize_t kk = first; kk < end; kk++) {
                    if (with_m[kk] == 1) continue;  /* lcm(met, 1) = met: nothing changes */
                    const int64_t before = mt[i * W + kk], updated = lcm[before * w + with_m[kk]];
                    /* Unchanged: `share`, `share_upper` and `share_diag` already hold what would be
                     * written (each is always the table's value of its `met`, masked where i ≥ k). */
                    if (updated == before) continue;
                    const double share = share_tab[colm[row + kk] * w + updated];
                    mt[i * W + kk] = updated;
                    su[i * W + kk] = i < kk ? share : 0.0;  /* numpy: share, or share·(i < k) from lo on */
                    if (kk == i) share_diag[row + i] = share;
                }
                terms[row + i] = coeff[row + i] * g[row + i] * inv_lcm[row + i];
                own[row + i] = coeff[row + i] * inv_lcm[row + i] * (last_g[row + i] + share_diag[row + i]);
            }
            terms[row + k] = coeff[row + k] * g[row + k] * inv_lcm[row + k];
            own[row + k] = coeff[row + k] * inv_lcm[row + k] * (last_g[row + k] + share_diag[row + k]);
            if (!exact_sum(terms + row, W, &rec_rate[c * steps + tt])) goto done;
            rec_memory[c * steps + tt] = memory[c];
        }
    }
    ok = 1;
done:
    PyMem_Free(lost);
    PyMem_Free(with_m);
    for (int q = 0; q < got; q++) PyBuffer_Release(&v[q]);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------
 * `s2_run`: one chain's run of S2 steps up to its next S3 step, compiled: what
 * `worker_chain.ChainBuilder._s2_run` does with `_greedy_order` (numpy, the reference and the
 * fallback), on the chain's `ChainState` and its one-row `S3Batch`, bit for bit:
 *  - the S2 moves' ratios are `saved/lost` with `saved = (double)((left_t - left_t+1)·bytes)` and
 *    `lost = (coeff·inv_lcm)·(g_t - g_t+1)`, `ratios`' rules; the order is numpy's stable sort by
 *    the running minimum of each stage's ratios, descending (a stable merge sort here);
 *  - the stretches and windows are numpy's, step for step (a stretch of `max(16, 2·last run)`
 *    steps, tested whole by the S3 ratios after it; else windows of 16 steps, then ×4), so that
 *    each piece's rates are anchored where numpy anchors them: `rate + cumsum(change)`, a
 *    sequential sum, the last one replaced by the exact sum of the terms;
 *  - S3 losses are `((0 + t_0·s_0k) + …) + own_k` in stage order, as einsum takes them.
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t P, wide;  /* stages; rungs per stage in the (P × wide) tables */
    int64_t *rung, *saved;
    const int64_t *rungs, *left, *acc, *bytes;
    const double *g_table, *coeff, *inv_lcm, *own, *share, *nbytes;
    double *g, *terms;
    const char *closed;  /* omitted, or the last stage (no S2 ladder either) */
} Chain;

/* `planner.s3_batch.ratios` for one pair. */
static double ratio_of(double saved, double lost) {
    if (lost > 0.0) return saved / lost;
    return (saved > 0.0 || lost < 0.0) ? INFINITY : 0.0;
}

/* `ChainState.term`: the (F3) term of stage j at rung r. */
static double term_at(const Chain *ch, Py_ssize_t j, int64_t r) {
    return ch->coeff[j] * ch->g_table[j * ch->wide + r] * ch->inv_lcm[j];
}

/* The best S3 step among stages `ready` for (F3) terms `t`: its ratio (largest, ties to the
 * lowest stage) into *best and stage into *at; returns 0 when no stage is ready. */
static int best_s3(const Chain *ch, const double *t, const char *ready, double *best, Py_ssize_t *at) {
    const Py_ssize_t P = ch->P;
    int any = 0;
    for (Py_ssize_t k = 0; k < P; k++) {
        if (!ready[k]) continue;
        double lost = 0.0;
        for (Py_ssize_t i = 0; i < k; i++) lost += t[i] * ch->share[i * P + k];
        const double r = ratio_of(ch->nbytes[k], lost + ch->own[k]);
        if (!any || r > *best) { *best = r; *at = k; }
        any = 1;
    }
    return any;
}

/* Stable merge sort of `idx[0:n]` by `key`, descending (numpy's stable argsort of -key). */
static void sort_desc(Py_ssize_t *idx, Py_ssize_t *tmp, const double *key, Py_ssize_t n) {
    for (Py_ssize_t w = 1; w < n; w *= 2) {
        for (Py_ssize_t lo = 0; lo < n; lo += 2 * w) {
            Py_ssize_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            Py_ssize_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi) tmp[o++] = key[idx[b]] > key[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid) tmp[o++] = idx[a++];
            while (b < hi) tmp[o++] = idx[b++];
        }
        memcpy(idx, tmp, sizeof(Py_ssize_t) * (size_t)n);
    }
}

/* The run's records (S2 steps taken so far) and the chain's rate and memory after them. */
typedef struct {
    Py_ssize_t n, cap;
    int64_t *stage, *memory, *acc;
    double *ratio, *rate;
    double rate_now;
    int64_t mem_now;
} Records;

/* `ChainBuilder._take_s2`: take ordered moves [a, b) and record them. */
static int take_s2(Chain *ch, Records *rec, const Py_ssize_t *stage, const double *ratio, const int64_t *reach,
                   Py_ssize_t a, Py_ssize_t b) {
    double change = 0.0;
    int64_t saved = 0;
    for (Py_ssize_t q = a; q < b; q++) {
        const Py_ssize_t s = stage[q], o = rec->n + q - a;
        const int64_t r = reach[q];
        const double d = term_at(ch, s, r) - term_at(ch, s, r - 1);
        change = q == a ? d : change + d;  /* np.cumsum: sequential, from the first element */
        saved += (ch->left[s * ch->wide + r - 1] - ch->left[s * ch->wide + r]) * ch->bytes[s];
        rec->stage[o] = s;
        rec->ratio[o] = ratio[q];
        rec->rate[o] = rec->rate_now + change;
        rec->memory[o] = rec->mem_now - saved;
        rec->acc[o] = ch->acc[s * ch->wide + r];
    }
    for (Py_ssize_t q = a; q < b; q++) {  /* ChainState.apply_s2_run */
        const Py_ssize_t s = stage[q];
        if (reach[q] > ch->rung[s]) ch->rung[s] = reach[q];
    }
    for (Py_ssize_t q = a; q < b; q++) {
        const Py_ssize_t s = stage[q];
        const int64_t r = ch->rung[s];
        ch->g[s] = ch->g_table[s * ch->wide + r];
        ch->terms[s] = term_at(ch, s, r);
        ch->saved[s] = ch->left[s * ch->wide + r] * ch->bytes[s];
    }
    rec->n += b - a;
    if (!exact_sum(ch->terms, ch->P, &rec->rate_now)) return 0;  /* re-anchored on the exact sum */
    rec->rate[rec->n - 1] = rec->rate_now;
    rec->mem_now = rec->memory[rec->n - 1];
    return 1;
}

enum {
    C_RUNG, C_RUNGS, C_LEFT, C_ACC, C_G_TABLE, C_BYTES, C_COEFF, C_INV_LCM, C_G, C_TERMS, C_OWN, C_CLOSED,
    C_SAVED, C_SHARE_UPPER, C_NBYTES, N_CHAIN
};
static const Field CHAIN_FIELDS[N_CHAIN] = {
    {"rung", 'q', 1}, {"rungs", 'q', 0}, {"left", 'q', 0}, {"acc", 'q', 0}, {"g_table", 'd', 0},
    {"nbytes", 'q', 0}, {"coeff", 'd', 0}, {"inv_lcm", 'd', 0}, {"g", 'd', 1}, {"terms", 'd', 1},
    {"own", 'd', 0}, {"closed", '?', 0}, {"saved", 'q', 1}, {"share_upper", 'd', 0}, {"nbytes", 'd', 0},
};

static PyObject *s2_run(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *state, *s3, *ints_obj, *floats_obj;
    double rate;
    long long mem;
    Py_ssize_t last_run;
    if (!PyArg_ParseTuple(args, "OOdLnOO", &state, &s3, &rate, &mem, &last_run, &ints_obj, &floats_obj)) return NULL;
    Py_buffer v[N_CHAIN + 2];
    int got = 0, ok = 0;
    void *scratch = NULL;
    Py_ssize_t P = -1, s3_stage = -1;
    double s3_ratio = -INFINITY;
    Chain ch;
    Records rec;
    for (; got < N_CHAIN; got++) {  /* the first six are ChainState's, the rest its S3Batch's */
        PyObject *arr = PyObject_GetAttrString(got < C_COEFF ? state : s3, CHAIN_FIELDS[got].name);
        if (arr == NULL) goto done;
        /* rung gives P; the (P × wide) ladder tables are checked below */
        const int table = got == C_RUNG || got == C_LEFT || got == C_ACC || got == C_G_TABLE;
        const Py_ssize_t count = table ? -1 : (got == C_SHARE_UPPER ? P * P : P);
        int bad = get_buffer(arr, CHAIN_FIELDS[got].name, CHAIN_FIELDS[got].kind, CHAIN_FIELDS[got].writable, count,
                             &v[got]);
        Py_DECREF(arr);
        if (bad) goto done;
        if (got == C_RUNG) P = v[C_RUNG].len / 8;
    }
    for (int r = 0; r < 2; r++, got++)
        if (get_buffer(r ? floats_obj : ints_obj, r ? "floats" : "ints", r ? 'd' : 'q', 1, -1, &v[got]) < 0)
            goto done;
    ch.P = P;
    ch.wide = P > 0 ? v[C_LEFT].len / 8 / P : 0;
    if (P < 1 || v[C_LEFT].len != P * ch.wide * 8 || v[C_ACC].len != v[C_LEFT].len ||
        v[C_G_TABLE].len != v[C_LEFT].len) {
        PyErr_SetString(PyExc_ValueError, "_s3_kernel: the ladder tables are not stages × rungs");
        goto done;
    }
    ch.rung = v[C_RUNG].buf, ch.saved = v[C_SAVED].buf, ch.rungs = v[C_RUNGS].buf, ch.left = v[C_LEFT].buf;
    ch.acc = v[C_ACC].buf, ch.bytes = v[C_BYTES].buf, ch.g_table = v[C_G_TABLE].buf, ch.coeff = v[C_COEFF].buf;
    ch.inv_lcm = v[C_INV_LCM].buf, ch.own = v[C_OWN].buf, ch.share = v[C_SHARE_UPPER].buf;
    ch.nbytes = v[C_NBYTES].buf, ch.g = v[C_G].buf, ch.terms = v[C_TERMS].buf, ch.closed = v[C_CLOSED].buf;
    Py_ssize_t moves = 0;
    for (Py_ssize_t j = 0; j < P; j++) {
        if (ch.rungs[j] < 1 || ch.rungs[j] > ch.wide || ch.rung[j] < 0 || ch.rung[j] >= ch.rungs[j]) {
            PyErr_SetString(PyExc_ValueError, "_s3_kernel: a rung lies outside its ladder");
            goto done;
        }
        if (!ch.closed[j]) moves += ch.rungs[j] - 1 - ch.rung[j];
    }
    rec.cap = v[N_CHAIN].len / 8 / 3;
    if (v[N_CHAIN].len != rec.cap * 3 * 8 || v[N_CHAIN + 1].len != rec.cap * 2 * 8 || rec.cap < moves) {
        PyErr_SetString(PyExc_ValueError, "_s3_kernel: the records cannot hold the run");
        goto done;
    }
    rec.n = 0, rec.rate_now = rate, rec.mem_now = mem;
    rec.stage = v[N_CHAIN].buf, rec.memory = rec.stage + rec.cap, rec.acc = rec.memory + rec.cap;
    rec.ratio = v[N_CHAIN + 1].buf, rec.rate = rec.ratio + rec.cap;

    /* scratch: per move (unordered: stage, rung, ratio, key; ordered: idx, tmp, stage, ratio, key,
     * reach), per stage (rung, ready_at, terms, ready) */
    size_t per_move = 3 * sizeof(Py_ssize_t) + 4 * sizeof(double) + 2 * sizeof(int64_t) + sizeof(Py_ssize_t);
    size_t per_stage = sizeof(int64_t) * 2 + sizeof(double) + 1;
    scratch = PyMem_Malloc(per_move * (size_t)(moves + 1) + per_stage * (size_t)P + 64);
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t *idx = scratch, *tmp = idx + moves + 1, *o_stage = tmp + moves + 1;
    double *m_ratio = (double *)(o_stage + moves + 1), *m_key = m_ratio + moves + 1;
    double *o_ratio = m_key + moves + 1, *o_key = o_ratio + moves + 1;
    int64_t *m_rung = (int64_t *)(o_key + moves + 1), *o_reach = m_rung + moves + 1;
    int64_t *rung2 = o_reach + moves + 1, *ready_at = rung2 + P;
    double *row = (double *)(ready_at + P);
    char *ready = (char *)(row + P);

    /* `ChainState.s2_moves` and `_greedy_order`: every S2 step left, ordered. */
    Py_ssize_t n = 0;
    for (Py_ssize_t j = 0; j < P; j++) {
        if (ch.closed[j]) continue;
        double key = INFINITY;
        const double scale = ch.coeff[j] * ch.inv_lcm[j];
        for (int64_t t = ch.rung[j]; t < ch.rungs[j] - 1; t++, n++) {
            const double saved = (double)((ch.left[j * ch.wide + t] - ch.left[j * ch.wide + t + 1]) * ch.bytes[j]);
            const double lost = scale * (ch.g_table[j * ch.wide + t] - ch.g_table[j * ch.wide + t + 1]);
            m_ratio[n] = ratio_of(saved, lost);
            key = m_ratio[n] < key ? m_ratio[n] : key;  /* np.minimum.accumulate */
            m_key[n] = key;
            m_rung[n] = t;
            idx[n] = j;  /* the stage, for now */
        }
    }
    for (Py_ssize_t q = 0; q < n; q++) o_stage[q] = idx[q];
    for (Py_ssize_t q = 0; q < n; q++) idx[q] = q;
    sort_desc(idx, tmp, m_key, n);
    for (Py_ssize_t q = 0; q < n; q++) {
        const Py_ssize_t from = idx[q];
        tmp[q] = o_stage[from];
        o_ratio[q] = m_ratio[from];
        o_key[q] = m_key[from];
        o_reach[q] = m_rung[from] + 1;
    }
    memcpy(o_stage, tmp, sizeof(Py_ssize_t) * (size_t)n);

    /* `ChainBuilder._s2_run`: stretches taken whole while no S3 step can come within them, else
     * windows examined step by step. */
    const Py_ssize_t WINDOW = 16;
    Py_ssize_t start = 0, width = 2 * last_run < n ? 2 * last_run : n;
    if (width < WINDOW) width = WINDOW;
    while (start < n) {
        const Py_ssize_t end = start + width < n ? start + width : n;
        if (width > WINDOW) {  /* ChainState.s3_stays_below */
            memcpy(rung2, ch.rung, sizeof(int64_t) * (size_t)P);
            memcpy(row, ch.terms, sizeof(double) * (size_t)P);
            for (Py_ssize_t q = start; q < end; q++)
                if (o_reach[q] > rung2[o_stage[q]]) rung2[o_stage[q]] = o_reach[q];
            for (Py_ssize_t j = 0; j < P; j++) {
                if (rung2[j] != ch.rung[j]) row[j] = term_at(&ch, j, rung2[j]);
                ready[j] = !ch.closed[j] && rung2[j] == ch.rungs[j] - 1;
            }
            double best = 0.0;
            Py_ssize_t at = -1;
            if (!best_s3(&ch, row, ready, &best, &at) || best < o_key[end - 1]) {
                if (!take_s2(&ch, &rec, o_stage, o_ratio, o_reach, start, end)) goto done;
                start = end;
            } else {
                width = WINDOW;
            }
            continue;
        }
        /* `_first_s3` over the window: the first prefix after which S3 is the greedy's choice. */
        const Py_ssize_t Q = end - start;
        const double follow_ratio = end < n ? o_ratio[end] : -INFINITY;
        const Py_ssize_t follow_stage = end < n ? o_stage[end] : P;
        for (Py_ssize_t j = 0; j < P; j++)
            ready_at[j] = (!ch.closed[j] && ch.rung[j] == ch.rungs[j] - 1) ? 0 : Q + 1;
        for (Py_ssize_t q = start; q < end; q++)
            if (o_reach[q] == ch.rungs[o_stage[q]] - 1) ready_at[o_stage[q]] = q - start + 1;
        memcpy(row, ch.terms, sizeof(double) * (size_t)P);
        Py_ssize_t found = -1;
        for (Py_ssize_t q = 0; q <= Q && found < 0; q++) {
            if (q > 0) row[o_stage[start + q - 1]] = term_at(&ch, o_stage[start + q - 1], o_reach[start + q - 1]);
            for (Py_ssize_t j = 0; j < P; j++) ready[j] = ready_at[j] <= q;
            double best = 0.0;
            Py_ssize_t at = -1;
            if (!best_s3(&ch, row, ready, &best, &at)) continue;
            const double next_ratio = q < Q ? o_ratio[start + q] : follow_ratio;
            const Py_ssize_t next_stage = q < Q ? o_stage[start + q] : follow_stage;
            if (best > next_ratio || (best == next_ratio && at < next_stage)) {
                found = q, s3_stage = at, s3_ratio = best;
            }
        }
        const Py_ssize_t q = found < 0 ? Q : found;
        if (q > 0 && !take_s2(&ch, &rec, o_stage, o_ratio, o_reach, start, start + q)) goto done;
        if (found >= 0) {
            last_run = start + q;
            break;
        }
        start = end, width = 4 * width;
    }
    ok = 1;
done:
    PyMem_Free(scratch);
    for (int q = 0; q < got; q++) PyBuffer_Release(&v[q]);
    if (!ok) return NULL;
    return Py_BuildValue("nndn", rec.n, s3_stage, s3_ratio, last_run);
}

/* ------------------------------------------------------------------------------------------
 * `walk`: `planner.walk.best_walk` of one chain and budget, with the position's total rate,
 * compiled: the blocks (at each strict new prefix minimum of the ratios), the first position
 * that fits, then the best total among it and every later one and the earliest position within
 * the slack of it — the same integer arithmetic, and every total formed as
 * `(n·r_end + r_state) + (N-1-n)·r_start` in that order, as the Python code forms it.
 * ---------------------------------------------------------------------------------------- */

typedef struct {
    const double *rates;
    const int64_t *memory;
    const Py_ssize_t *starts, *ends;
    Py_ssize_t K, N;
} Walker;

static double walk_total(const Walker *wk, Py_ssize_t block, Py_ssize_t worker, Py_ssize_t state) {
    return (double)worker * wk->rates[wk->ends[block]] + wk->rates[state] +
           (double)(wk->N - 1 - worker) * wk->rates[wk->starts[block]];
}

static Py_ssize_t walk_last_state(const Walker *wk, Py_ssize_t block, Py_ssize_t worker) {
    const Py_ssize_t e = wk->ends[block];
    return (e == wk->K && worker == wk->N - 1) ? wk->K - 1 : e;
}

static Py_ssize_t walk_best_state(const Walker *wk, Py_ssize_t lo, Py_ssize_t hi) {
    Py_ssize_t at = lo;
    for (Py_ssize_t k = lo + 1; k <= hi; k++)
        if (wk->rates[k] > wk->rates[at]) at = k;
    return at;
}

typedef struct {
    Py_ssize_t block, lo, hi, k_lo, k_hi;
} Piece;

/* `_pieces`: walkers first..N-1 of a block, split into ranges that reach the same states. */
static int walk_pieces(const Walker *wk, Py_ssize_t block, Py_ssize_t first, Py_ssize_t first_state, Piece *out) {
    const Py_ssize_t N = wk->N, e = wk->ends[block], last = walk_last_state(wk, block, N - 1);
    if (first > N - 1) return 0;
    if (last == e) {
        out[0] = (Piece){block, first, N - 1, first_state, e};
        return 1;
    }
    int n = 0;
    if (first <= N - 2) out[n++] = (Piece){block, first, N - 2, first_state, e};
    out[n++] = (Piece){block, N - 1, N - 1, first_state, last};
    return n;
}

static double walk_piece_peak(const Walker *wk, const Piece *p) {
    if (p->k_lo > p->k_hi) return -INFINITY;
    const Py_ssize_t k = walk_best_state(wk, p->k_lo, p->k_hi);
    const double a = walk_total(wk, p->block, p->lo, k), b = walk_total(wk, p->block, p->hi, k);
    return b > a ? b : a;
}

/* `_earliest`: 1 and the position into *found, 0 when the piece does not reach the threshold,
 * -1 with an error set where Python raises. */
static int walk_earliest(const Walker *wk, const Piece *p, double threshold, Py_ssize_t found[3]) {
    if (p->k_lo > p->k_hi) return 0;
    const Py_ssize_t k_best = walk_best_state(wk, p->k_lo, p->k_hi);
    const double at_lo = walk_total(wk, p->block, p->lo, k_best), at_hi = walk_total(wk, p->block, p->hi, k_best);
    if ((at_hi > at_lo ? at_hi : at_lo) < threshold) return 0;
    Py_ssize_t n = p->lo;
    if (at_lo < threshold) {
        const double slope = wk->rates[wk->ends[p->block]] - wk->rates[wk->starts[p->block]];
        if (slope > 0) {
            const double c = ceil((threshold - walk_total(wk, p->block, 0, k_best)) / slope);
            if (!isfinite(c)) {
                PyErr_SetString(PyExc_OverflowError, "cannot convert float infinity to integer");
                return -1;
            }
            n = c < (double)p->lo ? p->lo : (c > (double)p->hi ? p->hi : (Py_ssize_t)c);
        }
        while (n > p->lo && walk_total(wk, p->block, n - 1, k_best) >= threshold) n--;
        while (walk_total(wk, p->block, n, k_best) < threshold) n++;
    }
    const Py_ssize_t e = wk->ends[p->block], b = wk->starts[p->block];
    Py_ssize_t k = p->k_lo;  /* np.argmax of all-False: the first */
    for (Py_ssize_t q = p->k_lo; q <= p->k_hi; q++)
        if ((double)n * wk->rates[e] + wk->rates[q] + (double)(wk->N - 1 - n) * wk->rates[b] >= threshold) {
            k = q;
            break;
        }
    found[0] = p->block, found[1] = n, found[2] = k;
    return 1;
}

static PyObject *walk(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *rates_obj, *memory_obj, *ratios_obj;
    Py_ssize_t N;
    long long budget;
    double slack;
    if (!PyArg_ParseTuple(args, "OOOnLd", &rates_obj, &memory_obj, &ratios_obj, &N, &budget, &slack)) return NULL;
    Py_buffer v[3];
    int got = 0;
    PyObject *result = NULL;
    Py_ssize_t *starts = NULL;
    double *top = NULL;
    if (get_buffer(rates_obj, "rates", 'd', 0, -1, &v[got]) < 0) goto done;
    got++;
    const Py_ssize_t K = v[0].len / 8 - 1;
    if (get_buffer(memory_obj, "memory", 'q', 0, K + 1, &v[got]) < 0) goto done;
    got++;
    if (get_buffer(ratios_obj, "ratios", 'd', 0, K, &v[got]) < 0) goto done;
    got++;
    if (K < 1 || N < 1) {
        PyErr_SetString(PyExc_ValueError, "_s3_kernel: a walk needs a step and a worker");
        goto done;
    }
    const double *rates = v[0].buf, *ratio = v[2].buf;
    const int64_t *memory = v[1].buf;
    starts = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(2 * K + 2));
    top = PyMem_Malloc(sizeof(double) * (size_t)(K + 1));
    if (starts == NULL || top == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Blocks: a new one at each strict new prefix minimum of the ratios. */
    Py_ssize_t B = 1;
    starts[0] = 0;
    double low = ratio[0];
    for (Py_ssize_t k = 1; k < K; k++) {
        if (ratio[k] < low) starts[B++] = k;
        low = ratio[k] < low ? ratio[k] : low;
    }
    Py_ssize_t *ends = starts + B;
    for (Py_ssize_t b = 0; b < B; b++) ends[b] = b + 1 < B ? starts[b + 1] : K;
    for (Py_ssize_t b = 0; b < B; b++) {  /* the highest rate among states start+1 .. end */
        double best = rates[starts[b] + 1];
        for (Py_ssize_t k = starts[b] + 2; k <= ends[b]; k++) best = rates[k] > best ? rates[k] : best;
        top[b] = best;
    }
    const Walker wk = {rates, memory, starts, ends, K, N};

    /* first_fit */
    Py_ssize_t t0 = 0, done0 = 0, state0 = 0;
    if (!((__int128)N * memory[0] <= budget)) {
        t0 = -1;
        for (Py_ssize_t b = 0; b < B && t0 < 0; b++) {
            const __int128 floor = ends[b] == K ? memory[K - 1] : (__int128)N * memory[ends[b]];
            if (floor <= budget) t0 = b;
        }
        if (t0 < 0) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        const int64_t Mb = memory[starts[t0]], Me = memory[ends[t0]];
        const __int128 over = (__int128)N * Mb - budget, step = (__int128)Mb - Me;
        if (step <= 0 || over <= 0) {  /* never: memory falls along a block, and block t0 is the first fit */
            PyErr_SetString(PyExc_ValueError, "_s3_kernel: the chain's memory does not fall where it must");
            goto done;
        }
        __int128 n = (over + step - 1) / step - 1;  /* ⌈over/step⌉ - 1, clamped to 0..N-1 */
        n = n < 0 ? 0 : (n > N - 1 ? N - 1 : n);
        const __int128 room = budget - n * Me - (N - 1 - n) * Mb;
        const Py_ssize_t hi = walk_last_state(&wk, t0, (Py_ssize_t)n);
        Py_ssize_t k = starts[t0] + 1;
        while (k <= hi && !(memory[k] <= room)) k++;
        if (k > hi) {
            PyErr_SetString(PyExc_AssertionError, "no state fits although the block floor ≤ budget");
            goto done;
        }
        done0 = (Py_ssize_t)n, state0 = k;
    }

    /* best_walk: the best total from the first fit on, then the earliest position near it. */
    Piece pieces[3], tail[2];
    int np_ = 1, nt = 0;
    const Py_ssize_t last = B - 1;
    pieces[0] = (Piece){t0, done0, done0, state0, walk_last_state(&wk, t0, done0)};
    np_ += walk_pieces(&wk, t0, done0 + 1, starts[t0] + 1, pieces + 1);
    if (t0 < last) nt = walk_pieces(&wk, last, 0, starts[last] + 1, tail);
    double peak = -INFINITY;
    for (int q = 0; q < np_; q++) {
        const double x = walk_piece_peak(&wk, &pieces[q]);
        peak = x > peak ? x : peak;
    }
    for (int q = 0; q < nt; q++) {
        const double x = walk_piece_peak(&wk, &tail[q]);
        peak = x > peak ? x : peak;
    }
    for (Py_ssize_t b = t0 + 1; b < last; b++) {  /* inner blocks: walker 0 or N-1 at the block's top */
        const double a = 0.0 * rates[ends[b]] + top[b] + (double)(N - 1) * rates[starts[b]];
        const double c = (double)(N - 1) * rates[ends[b]] + top[b] + 0.0 * rates[starts[b]];
        top[b] = c > a ? c : a;  /* now the block's peak */
        peak = top[b] > peak ? top[b] : peak;
    }
    const double threshold = peak > 0 ? peak * (1.0 - slack) : peak;
    Py_ssize_t found[3];
    int hit = 0;
    for (int q = 0; q < np_ && !hit; q++)
        if ((hit = walk_earliest(&wk, &pieces[q], threshold, found)) < 0) goto done;
    for (Py_ssize_t b = t0 + 1; b < last && !hit; b++)
        if (top[b] >= threshold) {
            const Piece whole = {b, 0, N - 1, starts[b] + 1, ends[b]};
            if ((hit = walk_earliest(&wk, &whole, threshold, found)) < 0) goto done;
            if (!hit) {
                PyErr_SetString(PyExc_AssertionError, "a block whose peak reaches the threshold must contain it");
                goto done;
            }
        }
    for (int q = 0; q < nt && !hit; q++)
        if ((hit = walk_earliest(&wk, &tail[q], threshold, found)) < 0) goto done;
    if (!hit) {
        PyErr_SetString(PyExc_AssertionError, "the highest total rate was not found again");
        goto done;
    }
    result = Py_BuildValue("nnnd", found[0], found[1], found[2], walk_total(&wk, found[0], found[1], found[2]));
done:
    PyMem_Free(starts);
    PyMem_Free(top);
    for (int q = 0; q < got; q++) PyBuffer_Release(&v[q]);
    return result;
}

static PyMethodDef METHODS[] = {
    {"run", run, METH_VARARGS,
     "run(batch, counts, t, memory, rec_stage, rec_ratio, rec_rate, rec_memory): row c of the batch takes "
     "counts[c] steps from its tails' step t, in place; bit for bit as many lock-steps."},
    {"walk", walk, METH_VARARGS,
     "walk(rates, memory, ratios, N, budget, slack) -> (block, done, state, total rate) or None: "
     "planner.walk.best_walk of one chain and budget, with its total; bit for bit."},
    {"s2_run", s2_run, METH_VARARGS,
     "s2_run(state, s3, rate, memory, last_run, ints, floats) -> (steps, s3 stage, s3 ratio, last_run): "
     "a chain's S2 run up to its next S3 step, in place; bit for bit ChainBuilder._s2_run."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_s3_kernel",
    "The worker chains' compiled S2 runs, S3 tails and walks (bit for bit their Python paths).", -1, METHODS,
};

PyMODINIT_FUNC PyInit__s3_kernel(void) { return PyModule_Create(&MODULE); }
