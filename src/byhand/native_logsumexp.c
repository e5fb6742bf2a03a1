/* The log-sum-exp and the loss of each row of half-precision logits, in float32.
 *
 * For each row n of logits x_nj (j < cols) and its target class y_n, the row is read
 * once for its maximum and once more, from the processor's first-level cache, for
 *
 *     m_n = max_j x_nj,   s_n = sum_j exp(x_nj - m_n),
 *
 * every number taken to float32 as it is read and summed in float32. The row's results
 * are lse_n = m_n + log s_n and its loss L_n = log s_n - (x_{n y_n} - m_n), written so
 * that a loss near 0 loses no digits to lse_n - x_{n y_n}. The function returns
 * sum_n L_n, added in float64 in the order of the rows (the same on any thread count).
 * byhand.native_logsumexp compiles this file for the machine it runs on and calls it;
 * see that module for when.
 */

#include <math.h>
#include <stdint.h>

#ifndef __AVX2__
#error "built only with AVX2 or wider: without, the exponential does not vectorize"
#endif

typedef union {
    float f;
    uint32_t u;
} word;

static inline float from_bfloat16(uint16_t h) {
    word w;
    w.u = (uint32_t)h << 16; /* a bfloat16 is the top half of a float32 */
    return w.f;
}

/* e^x for x <= 0 (NaN stays NaN). x = k ln 2 + r with k = round(x / ln 2), |r| <= ln(2)/2;
 * e^r by its Taylor polynomial to degree 6 (relative remainder at most
 * (ln(2)/2)^7 / 7! * e^(ln(2)/2), about 1.7e-7), and 2^k added to the exponent bits.
 * Below -86, e^x < 5e-38: 0, which changes no sum that holds e^0 = 1 (so is -inf's 0). */
static inline float exp_nonpositive(float x) {
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    word k;
    k.f = x * 1.44269504f + shifter;
    float kf = k.f - shifter;
    /* ln 2 in two parts: k times the first is exact */
    float r = x - kf * 0.693145751953125f - kf * 1.428606765330187e-06f;
    word p;
    p.f = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f
          + r * (0.008333334f + r * 0.0013888889f)))));
    p.u += (k.u - 0x4B400000u) << 23; /* k.u - bits(shifter) is k, modulo 2^32 */
    return x < -86.0f ? 0.0f : p.f;
}

/* The sum goes BLOCK classes at a time, each block summed apart in the vector's lanes:
 * a lane adds at most BLOCK / lanes terms (64 with 16 lanes) before its block's total
 * joins the row's, so the rounding error stays within a few 1e-6 of s_n at any vocabulary
 * size (summed whole, it grew to 3e-5 at 32,000 float16 classes). */
#define BLOCK 1024

#define ROW_LOSSES(NAME, TYPE, TO_FLOAT)                                                   \
    double NAME(const TYPE *x, int64_t rows, int64_t cols, int64_t row_stride,            \
                const int64_t *target, int64_t target_stride, float *out,                  \
                int64_t out_stride, int threads) {                                         \
        _Pragma("omp parallel for num_threads(threads) schedule(static) if(threads > 1)") \
        for (int64_t n = 0; n < rows; n++) {                                               \
            const TYPE *row = x + n * row_stride;                                          \
            float m = -INFINITY;                                                           \
            _Pragma("omp simd reduction(max:m)")                                           \
            for (int64_t j = 0; j < cols; j++) {                                           \
                float v = TO_FLOAT(row[j]);                                                \
                m = v > m ? v : m;                                                         \
            }                                                                              \
            float s = 0.0f;                                                                \
            for (int64_t lo = 0; lo < cols; lo += BLOCK) {                                 \
                int64_t hi = lo + BLOCK < cols ? lo + BLOCK : cols;                        \
                float part = 0.0f;                                                         \
                _Pragma("omp simd reduction(+:part)")                                      \
                for (int64_t j = lo; j < hi; j++)                                          \
                    part += exp_nonpositive(TO_FLOAT(row[j]) - m);                         \
                s += part;                                                                 \
            }                                                                              \
            int64_t y = target[n * target_stride];                                         \
            float picked = y >= 0 && y < cols ? TO_FLOAT(row[y]) : NAN;                    \
            float log_s = logf(s);                                                         \
            out[n] = m + log_s;                                                            \
            out[out_stride + n] = log_s - (picked - m);                                    \
        }                                                                                  \
        double total = 0.0;                                                                \
        for (int64_t n = 0; n < rows; n++)                                                 \
            total += out[out_stride + n];                                                  \
        return total;                                                                      \
    }

ROW_LOSSES(row_losses_bfloat16, uint16_t, from_bfloat16)

#ifdef __FLT16_MAX__
#define FROM_FLOAT16(h) ((float)(h))
ROW_LOSSES(row_losses_float16, _Float16, FROM_FLOAT16)
#endif
