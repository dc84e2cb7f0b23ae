#include <torch/extension.h>

#include "bias_act_core.h"

namespace stylevid {
void bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& dy, at::Tensor& out,
                   const BiasActParams& p, bool i32);  // bias_act.cu
}

static at::Tensor bias_act(const at::Tensor& x, const at::Tensor& b, const at::Tensor& dy,
                           int64_t grad, int64_t dim, int64_t act, double alpha, double gain,
                           double clamp) {
  auto s = stylevid::bias_act_setup(x, b, dy, grad, dim, act, alpha, gain, clamp,
                                    c10::DeviceType::CUDA);
  if (s.p.numel > 0) stylevid::bias_act_cuda(x, s.b, dy, s.out, s.p, s.i32);
  return s.out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bias_act", &bias_act,
        "Fused bias + activation + gain + clamp (grad=0), or its 1st/2nd derivative times dy, "
        "on CUDA.",
        py::arg("x"), py::arg("b"), py::arg("dy"), py::arg("grad"), py::arg("dim"), py::arg("act"),
        py::arg("alpha"), py::arg("gain"), py::arg("clamp"));
}
