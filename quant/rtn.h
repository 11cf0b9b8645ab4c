/* quant/rtn.h: round-to-nearest integer-group quantization (data-free) into DTYPE_QINT tensors.
 *
 * Two min-max rules, each the reference implementation's own quantizer:
 *  - RTN_GPTQ: AutoGPTQ quantization/quantizer.py Quantizer.find_params + quantize (also what
 *    AutoRound's "rtn" recipe and GPTQ with no Hessian reduce to). Per group of x:
 *      xmin = min(min x, 0), xmax = max(max x, 0);  sym: xmax = max(|xmin|, xmax), xmin = −xmax
 *      (only when xmin < 0); both 0 → [−1, 1];  scale = (xmax − xmin)/maxq;
 *      zero = sym ? (maxq+1)/2 : round(−xmin/scale);  q = clamp(round(x/scale) + zero, 0, maxq).
 *    mse = true adds the Quantizer's `mse` grid search (norm 2.4, grid 100, maxshrink 0.8): for
 *    p = 1 − i/100, i = 0..79, shrink [xmin, xmax] by p (asym: zero re-rounded; sym: zero kept)
 *    and keep the scale/zero with the least Σ|Q(x) − x|^2.4 over the group. This is the data-free
 *    clipping search; AWQ's clip grid (max_shrink 0.5, 20 steps) needs activations, so it belongs
 *    to the calibrated AWQ, not here.
 *  - RTN_AWQ: AutoAWQ quantize/quantizer.py pseudo_quantize_tensor with zero_point (asym only):
 *      scale = max(max x − min x, 1e-5)/maxq; zero = clamp(−round(min x/scale), 0, maxq);
 *      q = clamp(round(x/scale) + zero, 0, maxq).
 * round() is round-half-to-even (torch.round). The scale is then rounded to fp16 (the dtype GPTQ
 * and AWQ checkpoints store: AutoGPTQ pack() `scales.to(weight dtype)`, AutoAWQ `.half()`) and the
 * codes are computed with the rounded scale, so the file reproduces the in-memory weights exactly.
 * zero_min = 1 for GPTQ v1 files, whose zero − 1 cannot be negative (kernels/qint.h). */
#ifndef QUANT_RTN_H
#define QUANT_RTN_H
#include "kernels/qint.h"

enum rtn_style { RTN_GPTQ, RTN_AWQ, RTN_STYLE_COUNT };

struct rtn_opts {
    int bits;           /* 2, 3, 4, 8 */
    int64_t group;      /* group length (a multiple of 32), or -1 / >= K: one group per row */
    bool sym;           /* RTN_GPTQ only */
    bool mse;           /* RTN_GPTQ only: the clipping grid search */
    enum rtn_style style;
    int zero_min;       /* lowest zero point allowed (1 for GPTQ v1 files, else 0) */
    bool scale_f32;     /* keep fp32 scales (default false: fp16, as checkpoints store them) */
};

/* Quantize w [N][K] (row-major fp32, finite) into *t, a DTYPE_QINT tensor named name whose buffer
 * *buf is owned by the caller (free()). -1 with a message on a bad setting. */
int rtn_quantize(const float *w, int64_t K, int64_t N, const struct rtn_opts *o, const char *name,
                 struct tensor *t, void **buf);
#endif
