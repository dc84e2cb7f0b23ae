// upfirdn2d: zero-insert upsample, pad (negative = crop), FIR filter, downsample -- one output
// element per call. Also the host-side checks/setup shared by the CUDA op and the CPU emulator.
#pragma once

#include <limits>

#include <ATen/ATen.h>

#include "common.h"

namespace stylevid {

struct Upfirdn2dParams {
  int64_t N, C, H, W, outH, outW, fh, fw;
  int64_t upx, upy, downx, downy, padx0, pady0;
  int64_t xs[4], ys[4];  // input / output strides in elements, order n, c, h, w
  int64_t total;         // number of output elements
  bool flip;
  bool channels_last;  // linear index walks c fastest (coalesced writes for NHWC output)
  double gain;
};

// Taps k in [k0, k1) step `up` are those whose upsampled coordinate u = o*down + k - pad0 is a
// multiple of `up` with u/up in [0, size); i0 is the input index of tap k0.
template <typename I>
STYLEVID_HD inline void upfirdn2d_taps(I o, I down, I pad0, I up, I size, I taps, I& k0, I& k1,
                                       I& i0) {
  const I u = o * down - pad0;
  // For u < 0 the first in-range tap is k = -u (u + k = 0), which is also aligned.
  k0 = u < 0 ? -u : pos_mod<I>(-u, up);
  const I lim = size * up - u;
  k1 = lim < taps ? lim : taps;
  i0 = (u + k0) / up;  // exact: u + k0 is a non-negative multiple of up
}

template <typename scalar_t, typename I>
STYLEVID_HD inline void upfirdn2d_element(I i, const scalar_t* x, const acc_t<scalar_t>* f,
                                          scalar_t* y, const Upfirdn2dParams& p) {
  using acc = acc_t<scalar_t>;
  const I C = p.C, oh = p.outH, ow = p.outW, fh = p.fh, fw = p.fw;
  I n, c, oy, ox;
  if (p.channels_last) {
    c = i % C; i /= C; ox = i % ow; i /= ow; oy = i % oh; n = i / oh;
  } else {
    ox = i % ow; i /= ow; oy = i % oh; i /= oh; c = i % C; n = i / C;
  }
  I ky0, ky1, iy, kx0, kx1, ix0;
  upfirdn2d_taps<I>(oy, p.downy, p.pady0, p.upy, p.H, fh, ky0, ky1, iy);
  upfirdn2d_taps<I>(ox, p.downx, p.padx0, p.upx, p.W, fw, kx0, kx1, ix0);
  const I sh = p.xs[2], sw = p.xs[3], upy = p.upy, upx = p.upx;
  const scalar_t* xp = x + n * I(p.xs[0]) + c * I(p.xs[1]);
  acc sum = 0;
  for (I ky = ky0; ky < ky1; ky += upy, ++iy) {
    // flip=false is a true convolution, i.e. correlation with the reversed filter.
    const acc* frow = f + (p.flip ? ky : fh - 1 - ky) * fw;
    I ix = ix0;
    for (I kx = kx0; kx < kx1; kx += upx, ++ix)
      sum += frow[p.flip ? kx : fw - 1 - kx] * static_cast<acc>(xp[iy * sh + ix * sw]);
  }
  y[n * I(p.ys[0]) + c * I(p.ys[1]) + oy * I(p.ys[2]) + ox * I(p.ys[3])] =
      static_cast<scalar_t>(sum * static_cast<acc>(p.gain));
}

// ---- host side (never compiled for the device) ----

inline int64_t max_offset(const at::Tensor& t) {
  int64_t m = 0;
  for (int64_t d = 0; d < t.dim(); ++d) m += (t.size(d) - 1) * t.stride(d);
  return m;
}

inline bool is_supported_dtype(at::ScalarType s) {
  return s == at::kHalf || s == at::kBFloat16 || s == at::kFloat || s == at::kDouble;
}

struct Upfirdn2dSetup {
  at::Tensor y, f;  // output, contiguous filter
  Upfirdn2dParams p;
  bool i32;  // all index arithmetic fits in int32 (much cheaper division on the GPU)
};

inline Upfirdn2dSetup upfirdn2d_setup(const at::Tensor& x, const at::Tensor& f, int64_t upx,
                                      int64_t upy, int64_t downx, int64_t downy, int64_t padx0,
                                      int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                                      double gain, c10::DeviceType device_type) {
  TORCH_CHECK(x.device().type() == device_type, "upfirdn2d: x must be a ",
              c10::DeviceTypeName(device_type), " tensor, got ", x.device());
  TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on x's device (", x.device(),
              "), got ", f.device());
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be 4-D [N, C, H, W], got ", x.dim(), "-D");
  TORCH_CHECK(is_supported_dtype(x.scalar_type()),
              "upfirdn2d: x must be float16, bfloat16, float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(f.dim() == 2 && f.size(0) >= 1 && f.size(1) >= 1,
              "upfirdn2d: f must be a non-empty 2-D [fh, fw] filter, got shape ", f.sizes());
  const at::ScalarType acc_dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(f.scalar_type() == acc_dtype, "upfirdn2d: f must be ", acc_dtype, " for x of dtype ",
              x.scalar_type(), ", got ", f.scalar_type());
  TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1,
              "upfirdn2d: up and down factors must be >= 1, got up=(", upx, ", ", upy,
              ") down=(", downx, ", ", downy, ")");

  Upfirdn2dParams p{};
  p.N = x.size(0); p.C = x.size(1); p.H = x.size(2); p.W = x.size(3);
  p.fh = f.size(0); p.fw = f.size(1);
  p.upx = upx; p.upy = upy; p.downx = downx; p.downy = downy; p.padx0 = padx0; p.pady0 = pady0;
  p.flip = flip;
  p.gain = gain;
  // Floor division: a negative span must give a size <= 0, not round up to 1.
  const int64_t spanh = p.H * upy + pady0 + pady1 - p.fh, spanw = p.W * upx + padx0 + padx1 - p.fw;
  p.outH = spanh < 0 ? 0 : spanh / downy + 1;
  p.outW = spanw < 0 ? 0 : spanw / downx + 1;
  TORCH_CHECK(p.outH >= 1 && p.outW >= 1, "upfirdn2d: output would be empty: input ", p.H, "x",
              p.W, ", up (", upy, ", ", upx, "), pad y (", pady0, ", ", pady1, ") x (", padx0, ", ",
              padx1, "), filter ", p.fh, "x", p.fw, ", down (", downy, ", ", downx, ") gives ",
              p.outH, "x", p.outW);

  p.channels_last = x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
  at::Tensor y = at::empty({p.N, p.C, p.outH, p.outW},
                           x.options().memory_format(p.channels_last ? at::MemoryFormat::ChannelsLast
                                                                     : at::MemoryFormat::Contiguous));
  for (int d = 0; d < 4; ++d) { p.xs[d] = x.stride(d); p.ys[d] = y.stride(d); }
  p.total = y.numel();

  // int32 needs every offset and every intermediate of upfirdn2d_taps (|o*down|, |pad0|,
  // size*up, taps) to stay below 2^31.
  const int64_t lim = std::numeric_limits<int32_t>::max();
  const int64_t taps_span =
      std::max(p.outH * downy + std::abs(pady0) + p.H * upy + p.fh,
               p.outW * downx + std::abs(padx0) + p.W * upx + p.fw);
  const bool i32 = p.total < lim && taps_span < lim &&
                   (x.numel() == 0 || max_offset(x) < lim) && (p.total == 0 || max_offset(y) < lim);
  return {y, f.contiguous(), p, i32};
}

}  // namespace stylevid
