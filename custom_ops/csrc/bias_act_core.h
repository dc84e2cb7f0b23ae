// bias_act: y = clamp(gain * act(x + b)), and its first/second derivative times dy, one element
// per call. Also the host-side checks/setup shared by the CUDA op and the CPU emulator.
#pragma once

#include <limits>

#include <ATen/ATen.h>

#include "common.h"

namespace stylevid {

constexpr int kNumActs = 9;  // 0 linear .. 8 swish, see act_eval

struct BiasActParams {
  int64_t numel, stride_dim, size_dim;
  bool has_bias;
  int grad, act;
  double alpha, gain, clamp;  // clamp < 0 disables clamping
};

// exp of -|z| never overflows, and e/(1+e) keeps precision for very negative z.
template <typename T> STYLEVID_HD inline T sv_sigmoid(T z) {
  const T e = sv_exp(-sv_abs(z));
  return z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// order-th derivative (0, 1 or 2) of activation `act` at z.
template <typename T> STYLEVID_HD inline T act_eval(int act, int order, T z, T alpha) {
  const T one = 1, zero = 0;
  switch (act) {
    case 0: return order == 0 ? z : order == 1 ? one : zero;                        // linear
    case 1: return z > zero ? (order == 0 ? z : order == 1 ? one : zero) : zero;    // relu
    case 2: return order == 0 ? (z > zero ? z : alpha * z)                           // lrelu
                 : order == 1 ? (z > zero ? one : alpha) : zero;
    case 3: {                                                                        // tanh
      const T t = sv_tanh(z), d = one - t * t;
      return order == 0 ? t : order == 1 ? d : T(-2) * t * d;
    }
    case 4: {                                                                        // sigmoid
      const T s = sv_sigmoid(z), d = s * (one - s);
      return order == 0 ? s : order == 1 ? d : d * (one - T(2) * s);
    }
    case 5:                                                                          // elu
    case 6: {                                                                        // selu
      // selu = lambda * elu with a fixed alpha.
      const T scale = act == 6 ? T(1.0507009873554804934193349852946) : one;
      const T a = act == 6 ? T(1.6732632423543772848170429916717) : alpha;
      if (z > zero) return order == 0 ? scale * z : order == 1 ? scale : zero;
      return scale * a * (order == 0 ? sv_expm1(z) : sv_exp(z));
    }
    case 7: {                                                                        // softplus
      if (z > T(20)) return order == 0 ? z : order == 1 ? one : zero;  // torch's threshold
      const T s = sv_sigmoid(z);
      return order == 0 ? sv_log1p(sv_exp(z)) : order == 1 ? s : s * (one - s);
    }
    case 8: {                                                                        // swish
      const T s = sv_sigmoid(z);
      return order == 0 ? z * s
           : order == 1 ? s * (one + z * (one - s))
                        : s * (one - s) * (T(2) + z * (one - T(2) * s));
    }
    default: return zero;  // rejected on the host
  }
}

// i is a memory offset; layouts are dense, so x, dy and out share it.
template <typename scalar_t, typename I>
STYLEVID_HD inline void bias_act_element(I i, const scalar_t* x, const scalar_t* b,
                                         const scalar_t* dy, scalar_t* out,
                                         const BiasActParams& p) {
  using acc = acc_t<scalar_t>;
  const acc alpha = acc(p.alpha), gain = acc(p.gain), clamp = acc(p.clamp);
  acc z = static_cast<acc>(x[i]);
  if (p.has_bias) z += static_cast<acc>(b[(i / I(p.stride_dim)) % I(p.size_dim)]);
  const bool clamped = clamp >= acc(0);
  acc y = 0;
  if (p.grad == 0 || clamped) y = gain * act_eval<acc>(p.act, 0, z, alpha);
  if (p.grad == 0) {
    if (clamped) y = y > clamp ? clamp : y < -clamp ? -clamp : y;
    out[i] = static_cast<scalar_t>(y);
  } else if (clamped && !(sv_abs(y) <= clamp)) {
    out[i] = static_cast<scalar_t>(acc(0));  // clamped region: zero even if f' is inf/nan
  } else {
    out[i] = static_cast<scalar_t>(static_cast<acc>(dy[i]) * gain *
                                   act_eval<acc>(p.act, p.grad, z, alpha));
  }
}

// ---- host side (never compiled for the device) ----

struct BiasActSetup {
  at::Tensor out, b;  // output (same strides as x), contiguous bias
  BiasActParams p;
  bool i32;
};

inline BiasActSetup bias_act_setup(const at::Tensor& x, const at::Tensor& b, const at::Tensor& dy,
                                   int64_t grad, int64_t dim, int64_t act, double alpha,
                                   double gain, double clamp, c10::DeviceType device_type) {
  TORCH_CHECK(x.device().type() == device_type, "bias_act: x must be a ",
              c10::DeviceTypeName(device_type), " tensor, got ", x.device());
  const at::ScalarType st = x.scalar_type();
  TORCH_CHECK(st == at::kHalf || st == at::kBFloat16 || st == at::kFloat || st == at::kDouble,
              "bias_act: x must be float16, bfloat16, float32 or float64, got ", st);
  // Memory offsets 0..numel-1 then cover x exactly, so one flat loop works for any dense layout.
  TORCH_CHECK(x.is_non_overlapping_and_dense(),
              "bias_act: x must be non-overlapping and dense, got strides ", x.strides());
  TORCH_CHECK(act >= 0 && act < kNumActs, "bias_act: unknown act code ", act, " (expected 0..",
              kNumActs - 1, ")");
  TORCH_CHECK(grad >= 0 && grad <= 2, "bias_act: unsupported grad order ", grad,
              " (expected 0, 1 or 2)");
  TORCH_CHECK(b.device() == x.device() && b.scalar_type() == st && b.dim() == 1,
              "bias_act: b must be a 1-D ", st, " tensor on ", x.device(), ", got ", b.dim(),
              "-D ", b.scalar_type(), " on ", b.device());

  BiasActParams p{};
  p.numel = x.numel();
  p.has_bias = b.numel() > 0;
  p.stride_dim = 1;
  p.size_dim = 1;
  if (p.has_bias) {
    TORCH_CHECK(dim >= -x.dim() && dim < x.dim(), "bias_act: dim ", dim,
                " out of range for a ", x.dim(), "-D x");
    const int64_t d = dim < 0 ? dim + x.dim() : dim;
    TORCH_CHECK(b.numel() == x.size(d), "bias_act: b has ", b.numel(),
                " elements but x.size(", dim, ") is ", x.size(d));
    p.size_dim = x.size(d);
    // A size-1 dim may carry any stride (even 0); its bias index is always 0.
    p.stride_dim = p.size_dim > 1 ? x.stride(d) : 1;
  }
  if (grad > 0) {
    TORCH_CHECK(dy.device() == x.device() && dy.scalar_type() == st, "bias_act: dy must be a ", st,
                " tensor on ", x.device(), ", got ", dy.scalar_type(), " on ", dy.device());
    TORCH_CHECK(dy.sizes() == x.sizes(), "bias_act: dy shape ", dy.sizes(), " != x shape ",
                x.sizes());
    // Strides of size-1 dims never affect an offset, so only the others must agree.
    for (int64_t d = 0; d < x.dim(); ++d)
      TORCH_CHECK(x.size(d) <= 1 || dy.stride(d) == x.stride(d), "bias_act: dy strides ",
                  dy.strides(), " != x strides ", x.strides());
  }
  p.grad = int(grad);
  p.act = int(act);
  p.alpha = alpha;
  p.gain = gain;
  p.clamp = clamp;
  at::Tensor out = at::empty_like(x);  // keeps x's dense strides, hence x's offsets
  const bool i32 = p.numel < std::numeric_limits<int32_t>::max();
  return {out, b.contiguous(), p, i32};
}

}  // namespace stylevid
