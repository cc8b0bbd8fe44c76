/* One instantiation of the trie evaluator (see _hermite_trie.c) for the scalar type T, its vector
 * type V of VBYTES bytes (LANES elements), tiles of 1, 2, 4 or 8 (MAX_NV) vectors a row, and
 * NAME(x) = x suffixed by the type and the level of code. */

typedef T V __attribute__((vector_size(VBYTES)));

/* One tile: rows [0, m) of z (m <= NV * LANES; the rest of the tile's lanes are zeros). F: the
 * tile's factor rows, S: (max_depth + 1) node values, acc: (outputs) sums, each row NV vectors. */
static inline __attribute__((always_inline)) void NAME(tile)(const Trie *t, const T *z, int64_t m, int64_t row_stride,
                                                             T *y, V *F, V *S, V *acc, const int NV) {
    const int64_t first = t->degrees > 0 ? t->rows_per_degree[0] : 0, outputs = t->outputs;
    for (int64_t r = 0; r < first; r++) { /* h_1 = z, the tile transposed: one row per input index */
        T *f = (T *)(F + r * NV);
        const T *zi = z + t->order[r];
        for (int64_t l = 0; l < m; l++) f[l] = zi[l * row_stride];
        for (int64_t l = m; l < NV * LANES; l++) f[l] = 0;
    }
    int64_t prev = -1, cur = 0, next = first;
    for (int64_t k = 1; k < t->degrees; k++) { /* h_{k+1} = a z h_k + b h_{k-1} */
        const int64_t rows = t->rows_per_degree[k];
        const T a = (T)(1.0 / sqrt((double)(k + 1))), b = (T)(-sqrt((double)k / (double)(k + 1)));
        for (int64_t r = 0; r < rows; r++) {
            V *out = F + (next + r) * NV;
            const V *zr = F + r * NV, *hk = F + (cur + r) * NV;
            for (int v = 0; v < NV; v++)
                out[v] = (prev < 0 ? (V){} + b : b * F[(prev + r) * NV + v]) + a * zr[v] * hk[v];
        }
        prev = cur, cur = next, next += rows;
    }
    for (int v = 0; v < NV; v++) S[v] = (V){} + 1;
    for (int64_t o = 0; o < outputs * NV; o++) acc[o] = (V){};
    const T *node_coef = (const T *)t->node_coef, *leaf_coef = (const T *)t->leaf_coef;
    int64_t leaf = 0;
    for (int64_t i = 0; i < t->nodes; i++) {
        V *s = S + t->depth[i] * NV;
        if (i > 0) { /* the node's value: its parent's (the last node one level up) times its factor */
            const V *parent = s - NV, *f = F + (int64_t)t->column[i] * NV;
            for (int v = 0; v < NV; v++) s[v] = parent[v] * f[v];
        }
        const int64_t end = t->leaf_end[i];
        for (int64_t o = 0; o < outputs; o++) { /* two partial sums: two independent chains of adds */
            V even[MAX_NV], odd[MAX_NV];
            for (int v = 0; v < NV; v++) even[v] = (V){} + node_coef[i * outputs + o], odd[v] = (V){};
            int64_t j = leaf;
            for (; j + 1 < end; j += 2) {
                const V *f0 = F + (int64_t)t->leaf_column[j] * NV, *f1 = F + (int64_t)t->leaf_column[j + 1] * NV;
                const T c0 = leaf_coef[j * outputs + o], c1 = leaf_coef[(j + 1) * outputs + o];
                for (int v = 0; v < NV; v++) even[v] += c0 * f0[v], odd[v] += c1 * f1[v];
            }
            if (j < end) {
                const V *f0 = F + (int64_t)t->leaf_column[j] * NV;
                const T c0 = leaf_coef[j * outputs + o];
                for (int v = 0; v < NV; v++) even[v] += c0 * f0[v];
            }
            for (int v = 0; v < NV; v++) acc[o * NV + v] += s[v] * (even[v] + odd[v]);
        }
        leaf = end;
    }
    for (int64_t l = 0; l < m; l++)
        for (int64_t o = 0; o < outputs; o++) y[l * outputs + o] = ((const T *)(acc + o * NV))[l];
}

#define NAME_NV(nv)                                                                                                  \
    static void NAME(tiles_##nv)(const Trie *t, const T *z, int64_t n, int64_t row_stride, T *y, V *work) {         \
        int64_t features = 0;                                                                                        \
        for (int64_t k = 0; k < t->degrees; k++) features += t->rows_per_degree[k];                                 \
        V *F = work, *S = F + features * nv, *acc = S + (t->max_depth + 1) * nv;                                    \
        for (int64_t first = 0; first < n; first += nv * LANES) {                                                   \
            const int64_t m = n - first < nv * LANES ? n - first : nv * LANES;                                       \
            NAME(tile)(t, z + first * row_stride, m, row_stride, y + first * t->outputs, F, S, acc, nv);            \
        }                                                                                                            \
    }
NAME_NV(1)
NAME_NV(2)
NAME_NV(4)
NAME_NV(8)
#undef NAME_NV

/* Rows [0, n) of z into y with tiles of nv vectors a row; 0, or -1 without memory for the tile. */
static int NAME(rows)(const Trie *t, const T *z, int64_t n, int64_t row_stride, T *y, int64_t nv) {
    int64_t features = 0;
    for (int64_t k = 0; k < t->degrees; k++) features += t->rows_per_degree[k];
    const size_t bytes = (size_t)(features + t->max_depth + 1 + t->outputs) * (size_t)nv * sizeof(V);
    V *work = aligned_alloc(64, (bytes + 63) / 64 * 64); /* C11: a multiple of the alignment */
    if (!work) return -1;
    switch (nv) {
        case 8: NAME(tiles_8)(t, z, n, row_stride, y, work); break;
        case 4: NAME(tiles_4)(t, z, n, row_stride, y, work); break;
        case 2: NAME(tiles_2)(t, z, n, row_stride, y, work); break;
        default: NAME(tiles_1)(t, z, n, row_stride, y, work); break;
    }
    free(work);
    return 0;
}
