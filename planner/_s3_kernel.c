/* One lock-step of `planner.s3_batch.S3Batch.tails`, compiled: `step(batch, A, t, memory,
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

static PyObject *step(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *batch, *mem_obj, *stage_obj, *ratio_obj, *rate_obj, *recmem_obj;
    Py_ssize_t A, t;
    if (!PyArg_ParseTuple(args, "OnnOOOOO", &batch, &A, &t, &mem_obj, &stage_obj, &ratio_obj, &rate_obj,
                          &recmem_obj))
        return NULL;
    Py_buffer v[N_FIELDS + 5];
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
    if (A < 0 || A > C) {
        PyErr_SetString(PyExc_ValueError, "_s3_kernel: A out of range");
        goto done;
    }
    PyObject *rec[5] = {mem_obj, stage_obj, ratio_obj, rate_obj, recmem_obj};
    const char rec_kind[5] = {'q', 'q', 'd', 'd', 'q'};
    static const char *rec_name[5] = {"memory", "rec_stage", "rec_ratio", "rec_rate", "rec_memory"};
    for (int r = 0; r < 5; r++, got++)
        if (get_buffer(rec[r], rec_name[r], rec_kind[r], 1, -1, &v[got]) < 0) goto done;
    Py_ssize_t steps = C > 0 ? v[N_FIELDS + 1].len / 8 / C : 0;
    if (v[N_FIELDS].len != C * 8 || t < 0 || t >= steps) {
        PyErr_SetString(PyExc_ValueError, "_s3_kernel: records do not fit the batch");
        goto done;
    }
    for (int r = 2; r < 5; r++)
        if (v[N_FIELDS + r].len != C * steps * 8) {
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
    int64_t *memory = v[N_FIELDS].buf, *rec_stage = v[N_FIELDS + 1].buf, *rec_memory = v[N_FIELDS + 4].buf;
    double *rec_ratio = v[N_FIELDS + 2].buf, *rec_rate = v[N_FIELDS + 3].buf;

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
        rec_ratio[c * steps + t] = best;
        rec_stage[c * steps + t] = k;
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
        if (!exact_sum(terms + row, W, &rec_rate[c * steps + t])) goto done;
        rec_memory[c * steps + t] = memory[c];
    }
    ok = 1;
done:
    PyMem_Free(lost);
    PyMem_Free(with_m);
    for (int q = 0; q < got; q++) PyBuffer_Release(&v[q]);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef METHODS[] = {
    {"step", step, METH_VARARGS,
     "step(batch, A, t, memory, rec_stage, rec_ratio, rec_rate, rec_memory): one lock-step of the "
     "first A rows of an S3Batch (its tails' step t), in place; bit for bit S3Batch._numpy_step."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_s3_kernel",
    "The compiled lock-step of planner.s3_batch (bit for bit its numpy path).", -1, METHODS,
};

PyMODINIT_FUNC PyInit__s3_kernel(void) { return PyModule_Create(&MODULE); }
