/* One level of code (see _hermite_trie.c, which defines ISA, VBYTES and MAX_NV): the evaluator's
 * body for float and for double, its functions named NAME(x) = x_<type>_<ISA>. */

#define T float
#define V XCAT3(vec, f32, ISA)
#define LANES (VBYTES / 4)
#define NAME(x) XCAT3(x, f32, ISA)
#include "_hermite_trie_body.h"
#undef T
#undef V
#undef LANES
#undef NAME

#define T double
#define V XCAT3(vec, f64, ISA)
#define LANES (VBYTES / 8)
#define NAME(x) XCAT3(x, f64, ISA)
#include "_hermite_trie_body.h"
#undef T
#undef V
#undef LANES
#undef NAME
