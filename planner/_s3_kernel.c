/* The worker chains' two compiled kernels: `step`, the tails' lock-step (this comment), and
 * `s2_run`, one chain's run of S2 steps (its own comment, further down); they share the buffer
 * checks and the exact sums.
 *
 * One lock-step of `planner.s3_batch.S3Batch.tails`, compiled: `step(batch, A, t, memory,
 * rec_stage, rec_ratio, rec_rate, rec_memory)` does what `S3Batch._numpy_step` does, on the
 * same arrays, with the same floating-point operations in the same order, so that the records
 * and every entry of the batch that is read again are the same bit for bit
 * (tests/planner/test_s3_kernel.py). That numpy code is the reference and the fallback; this
 * file only makes it fast (docs/planner.md §8). It does less than numpy where that cannot
 * show: it keeps `met`/`share` of each row's own open columns (numpy: of every column open in
 * any row of the batch; a closed column is never read again), and skips entries whose `met`
 * does not change (their `share` would be written with the value it holds).
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

/* `step` (many = 0: rows c < A take step t) and `run` (many = 1: row c takes counts[c] steps from
 * step t, one row after the other: rows are independent, so the order changes no bit, and each
 * row's matrices stay in cache through its steps). */
static PyObject *take(PyObject *args, int many) {
    PyObject *batch, *mem_obj, *stage_obj, *ratio_obj, *rate_obj, *recmem_obj, *counts_obj = NULL;
    Py_ssize_t A = 0, t;
    if (many ? !PyArg_ParseTuple(args, "OOnOOOOO", &batch, &counts_obj, &t, &mem_obj, &stage_obj, &ratio_obj,
                                 &rate_obj, &recmem_obj)
             : !PyArg_ParseTuple(args, "OnnOOOOO", &batch, &A, &t, &mem_obj, &stage_obj, &ratio_obj, &rate_obj,
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
    if (many) {
        if (get_buffer(counts_obj, "counts", 'q', 0, C, &v[got]) < 0) goto done;
        got++;
        A = C;
    }
    const int64_t *counts = many ? v[N_FIELDS].buf : NULL;
    if (A < 0 || A > C) {
        PyErr_SetString(PyExc_ValueError, "_s3_kernel: A out of range");
        goto done;
    }
    PyObject *rec[5] = {mem_obj, stage_obj, ratio_obj, rate_obj, recmem_obj};
    const char rec_kind[5] = {'q', 'q', 'd', 'd', 'q'};
    static const char *rec_name[5] = {"memory", "rec_stage", "rec_ratio", "rec_rate", "rec_memory"};
    const int R = N_FIELDS + many;  /* the records' buffers */
    for (int r = 0; r < 5; r++, got++)
        if (get_buffer(rec[r], rec_name[r], rec_kind[r], 1, -1, &v[got]) < 0) goto done;
    Py_ssize_t steps = C > 0 ? v[R + 1].len / 8 / C : 0;
    if (v[R].len != C * 8 || t < 0) {
        PyErr_SetString(PyExc_ValueError, "_s3_kernel: records do not fit the batch");
        goto done;
    }
    for (Py_ssize_t c = 0; c < A; c++)
        if (t + (many ? counts[c] : 1) > steps || (many && counts[c] < 0)) {
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

    for (Py_ssize_t c = 0; c < A; c++)
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
    for (Py_ssize_t c = 0; c < A; c++) {
        for (Py_ssize_t tt = t; tt < t + (many ? counts[c] : 1); tt++) {
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

static PyObject *step(PyObject *Py_UNUSED(module), PyObject *args) { return take(args, 0); }

static PyObject *run(PyObject *Py_UNUSED(module), PyObject *args) { return take(args, 1); }

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

static PyMethodDef METHODS[] = {
    {"step", step, METH_VARARGS,
     "step(batch, A, t, memory, rec_stage, rec_ratio, rec_rate, rec_memory): one lock-step of the "
     "first A rows of an S3Batch (its tails' step t), in place; bit for bit S3Batch._numpy_step."},
    {"run", run, METH_VARARGS,
     "run(batch, counts, t, memory, rec_stage, rec_ratio, rec_rate, rec_memory): row c of the batch takes "
     "counts[c] steps from its tails' step t, in place; bit for bit as many lock-steps."},
    {"s2_run", s2_run, METH_VARARGS,
     "s2_run(state, s3, rate, memory, last_run, ints, floats) -> (steps, s3 stage, s3 ratio, last_run): "
     "a chain's S2 run up to its next S3 step, in place; bit for bit ChainBuilder._s2_run."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_s3_kernel",
    "The worker chains' compiled S2 runs and S3 lock-steps (bit for bit their numpy paths).", -1, METHODS,
};

PyMODINIT_FUNC PyInit__s3_kernel(void) { return PyModule_Create(&MODULE); }
