#include <torch/extension.h>

#include "upfirdn2d_core.h"

namespace stylevid {
void upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, at::Tensor& y,
                    const Upfirdn2dParams& p, bool i32);  // upfirdn2d.cu
}

static at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy,
                            int64_t downx, int64_t downy, int64_t padx0, int64_t padx1,
                            int64_t pady0, int64_t pady1, bool flip, double gain) {
  auto s = stylevid::upfirdn2d_setup(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1,
                                     flip, gain, c10::DeviceType::CUDA);
  if (s.p.total > 0) stylevid::upfirdn2d_cuda(x, s.f, s.y, s.p, s.i32);
  return s.y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("upfirdn2d", &upfirdn2d,
        "Upsample (zero insertion), pad, 2-D FIR filter and downsample, on CUDA.", py::arg("x"),
        py::arg("f"), py::arg("upx"), py::arg("upy"), py::arg("downx"), py::arg("downy"),
        py::arg("padx0"), py::arg("padx1"), py::arg("pady0"), py::arg("pady1"), py::arg("flip"),
        py::arg("gain"));
}
