// CPU twin of the CUDA ops: the same argument checks (shared *_setup functions), the same
// Python signatures and the same per-element device functions, run serially over the elements a
// kernel's threads would cover. It exists so CI can prove the kernel math without a GPU.
#include <torch/extension.h>

#include "bias_act_core.h"
#include "upfirdn2d_core.h"

namespace stylevid {

static at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy,
                            int64_t downx, int64_t downy, int64_t padx0, int64_t padx1,
                            int64_t pady0, int64_t pady1, bool flip, double gain) {
  auto s = upfirdn2d_setup(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain,
                           c10::DeviceType::CPU);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(),
                                  "upfirdn2d_emulate", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const acc_t<scalar_t>* fp = s.f.const_data_ptr<acc_t<scalar_t>>();
    scalar_t* yp = s.y.mutable_data_ptr<scalar_t>();
    // Same index-type choice as the kernel launch, so both code paths are exercised.
    for (int64_t i = 0; i < s.p.total; ++i) {
      if (s.i32) upfirdn2d_element<scalar_t, int32_t>(int32_t(i), xp, fp, yp, s.p);
      else upfirdn2d_element<scalar_t, int64_t>(i, xp, fp, yp, s.p);
    }
  });
  return s.y;
}

static at::Tensor bias_act(const at::Tensor& x, const at::Tensor& b, const at::Tensor& dy,
                           int64_t grad, int64_t dim, int64_t act, double alpha, double gain,
                           double clamp) {
  auto s = bias_act_setup(x, b, dy, grad, dim, act, alpha, gain, clamp, c10::DeviceType::CPU);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(),
                                  "bias_act_emulate", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* bp = s.p.has_bias ? s.b.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* dyp = s.p.grad > 0 ? dy.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* op = s.out.mutable_data_ptr<scalar_t>();
    for (int64_t i = 0; i < s.p.numel; ++i) {
      if (s.i32) bias_act_element<scalar_t, int32_t>(int32_t(i), xp, bp, dyp, op, s.p);
      else bias_act_element<scalar_t, int64_t>(i, xp, bp, dyp, op, s.p);
    }
  });
  return s.out;
}

}  // namespace stylevid

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("upfirdn2d", &stylevid::upfirdn2d,
        "CPU emulation of the CUDA upfirdn2d kernel (same element code, serial loop).",
        py::arg("x"), py::arg("f"), py::arg("upx"), py::arg("upy"), py::arg("downx"),
        py::arg("downy"), py::arg("padx0"), py::arg("padx1"), py::arg("pady0"), py::arg("pady1"),
        py::arg("flip"), py::arg("gain"));
  m.def("bias_act", &stylevid::bias_act,
        "CPU emulation of the CUDA bias_act kernel (same element code, serial loop).",
        py::arg("x"), py::arg("b"), py::arg("dy"), py::arg("grad"), py::arg("dim"), py::arg("act"),
        py::arg("alpha"), py::arg("gain"), py::arg("clamp"));
}
