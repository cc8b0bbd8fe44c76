/* A many-term Hermite polynomial y(z) = sum_j c_j prod_i h_{k_ji}(z_i) evaluated on the CPU along the
 * prefix trie of its monomials, a tile of samples at a time (learnlab.tasks._polynomial_kernel builds
 * the trie and calls this through ctypes; the C API part below only makes the file importable).
 *
 * Per tile of W samples, each lane one sample:
 *   F[r]  = h_k(z_i) for every needed (k, i), by the three-term recurrence
 *           h_{k+1} = z h_k / sqrt(k + 1) - sqrt(k / (k + 1)) h_{k-1}  (h_0 = 1, h_1 = z);
 *   S[L]  = the value of the trie node at depth L on the current path (S[0] = 1, the root);
 *   y    += S[node] * (c_node + sum over its childless children c_leaf F[leaf])   (Horner on the trie).
 * Nodes with children are walked in preorder, so S[depth - 1] is always the parent's value. Every
 * lane runs the same operations in the same order, so a sample's value has the same bits whatever
 * else is in the batch, however the batch is cut into tiles or threads.
 *
 * Tiles hold NV vectors per row (vectors as wide as the CPU's registers, NV up to 8, below);
 * smaller batches take narrower tiles. The body is written once (_hermite_trie_body.h) and
 * instantiated for float and double (_hermite_trie_types.h) per level of code. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t d;                      /* columns of z that the polynomial reads (max index + 1) */
    int64_t outputs;
    int64_t degrees;                /* kmax: factor rows hold h_1 .. h_kmax */
    const int64_t *rows_per_degree; /* (degrees,): rows needing degree >= k form a prefix of ``order`` */
    const int64_t *order;           /* (rows_per_degree[0],): the input index of each factor row */
    int64_t nodes;                  /* nodes with children, in preorder, the root first */
    int64_t max_depth;
    const int32_t *depth;           /* (nodes,) */
    const int32_t *column;          /* (nodes,) the factor row a node multiplies its parent by */
    const int32_t *leaf_end;        /* (nodes,) node i's childless children are leaves [leaf_end[i-1], leaf_end[i]) */
    const void *node_coef;          /* (nodes, outputs) */
    const int32_t *leaf_column;     /* (leaves,) */
    const void *leaf_coef;          /* (leaves, outputs) */
} Trie;

#define CAT3(a, b, c) a##_##b##_##c
#define XCAT3(a, b, c) CAT3(a, b, c)
#define INSTANTIATE "_hermite_trie_types.h" /* the body for float and for double, named NAME(x) */

/* Builds for x86-64 CPUs of three levels, chosen at each call by the CPU (``level``): AVX-512, AVX2
 * and the baseline (SSE2), each with vectors as wide as its registers (64, 32 and 16 bytes: wider
 * generic vectors than the registers made GCC spill them piecewise and ran 8-25x slower), tiles of
 * up to 8 vectors a row (measured best at every level, 4 and 2 up to 1.5x slower). Elsewhere (or
 * with LEARNLAB_ONE_ISA) one build for the compiler's target, with 16-byte vectors. The build is
 * made without contracting a * b + c into one rounding (-ffp-contract=off in setup.py): GCC
 * contracted some of a tile's vectors and not others, so a sample's bits depended on its lane;
 * without it every level gives the same bits, and a sample's bits do not depend on its tile. */
#define MAX_NV 8
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && !defined(LEARNLAB_ONE_ISA)
#define LEVELS 3
static const int64_t VECTOR_BYTES[3] = {16, 32, 64}; /* by level */
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define ISA avx512
#define VBYTES 64
#include INSTANTIATE
#undef ISA
#undef VBYTES
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define ISA avx2
#define VBYTES 32
#include INSTANTIATE
#undef ISA
#undef VBYTES
#pragma GCC pop_options
#define ISA base
#define VBYTES 16
#include INSTANTIATE
#undef ISA
#undef VBYTES

static int best_level(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4") ? 2 : __builtin_cpu_supports("x86-64-v3") ? 1 : 0;
}
#define ROWS(T, level) (level == 2 ? rows_##T##_avx512 : level == 1 ? rows_##T##_avx2 : rows_##T##_base)
#else
#define LEVELS 1
static const int64_t VECTOR_BYTES[1] = {16};
#define ISA base
#define VBYTES 16
#include INSTANTIATE
#undef ISA
#undef VBYTES
static int best_level(void) { return 0; }
#define ROWS(T, level) rows_##T##_base
#endif

/* The level of code this CPU runs (x86-64: 2 AVX-512, 1 AVX2, 0 the baseline; elsewhere 0). */
int learnlab_hermite_level(void) { return best_level(); }

typedef struct {
    const Trie *trie;
    int f64, level;
    const char *z; /* the job's first row */
    char *y;
    int64_t rows, row_stride, nv;
    int status;
} Job;

static void *run_job(void *arg) {
    Job *job = (Job *)arg;
    job->status = job->f64 ? ROWS(f64, job->level)(job->trie, (const double *)job->z, job->rows, job->row_stride,
                                                   (double *)job->y, job->nv)
                           : ROWS(f32, job->level)(job->trie, (const float *)job->z, job->rows, job->row_stride,
                                                   (float *)job->y, job->nv);
    return NULL;
}

/* y (n, outputs) = the polynomial at each row of z (rows ``row_stride`` elements apart, columns
 * contiguous), on up to ``threads`` threads (the caller's and threads - 1 started here), with the code
 * of ``level`` (-1: this CPU's best; a higher level than the CPU runs is lowered to its best). Returns
 * 0, or -1 where memory could not be had (y is then incomplete). */
int learnlab_hermite_trie(const Trie *trie, int f64, const void *z, int64_t n, int64_t row_stride, void *y,
                          int64_t threads, int level) {
    const int best = best_level();
    if (level < 0 || level > best) level = best;
    const int64_t size = f64 ? 8 : 4, lanes = VECTOR_BYTES[level] / size;
    if (n <= 0) return 0;
    if (threads > n / 64) threads = n / 64; /* a thread's start costs about what 64 samples do */
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    const int64_t per = (n + threads - 1) / threads; /* rows per job */
    int64_t nv = 1;
    while (nv < MAX_NV && nv * lanes < per) nv *= 2;
    const int64_t tile = nv * lanes, per_job = (per + tile - 1) / tile * tile;
    Job jobs[64];
    pthread_t ids[64];
    int64_t count = 0;
    for (int64_t first = 0; first < n; first += per_job, count++) {
        int64_t rows = n - first < per_job ? n - first : per_job;
        jobs[count] = (Job){trie, f64, level, (const char *)z + first * row_stride * size,
                            (char *)y + first * trie->outputs * size, rows, row_stride, nv, 0};
    }
    int started[64] = {0};
    for (int64_t j = 1; j < count; j++) started[j] = pthread_create(&ids[j], NULL, run_job, &jobs[j]) == 0;
    run_job(&jobs[0]);
    int status = jobs[0].status;
    for (int64_t j = 1; j < count; j++) {
        if (!started[j]) run_job(&jobs[j]); /* no thread to be had: do its rows here */
        else pthread_join(ids[j], NULL);
        if (jobs[j].status) status = jobs[j].status;
    }
    return status;
}

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_hermite_trie",
    .m_doc = "learnlab's compiled Hermite trie evaluator, called through ctypes by learnlab.tasks._polynomial_kernel.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__hermite_trie(void) { return PyModule_Create(&module); }
