#include <algorithm>

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "bias_act_core.h"

namespace stylevid {

template <typename scalar_t, typename I>
__global__ void bias_act_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ b,
                                const scalar_t* __restrict__ dy, scalar_t* __restrict__ out,
                                BiasActParams p) {
  // The loop counter is 64-bit so `i += stride` cannot wrap; the element math uses I.
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel; i += stride)
    bias_act_element<scalar_t, I>(I(i), x, b, dy, out, p);
}

void bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& dy, at::Tensor& out,
                   const BiasActParams& p, bool i32) {
  const c10::cuda::CUDAGuard guard(x.device());
  // c10::cuda:: is what at::cuda::getCurrentCUDAStream aliases; ATen/cuda/CUDAContext.h would
  // also drag in cuBLAS/cuSPARSE headers that a bare toolkit may lack.
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  constexpr int threads = 256;
  // 16M threads saturate any current GPU; the grid-stride loop covers larger tensors.
  constexpr int64_t max_blocks = 65536;
  const unsigned blocks = unsigned(std::min((p.numel + threads - 1) / threads, max_blocks));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(),
                                  "bias_act_cuda", [&] {
    auto kernel = i32 ? bias_act_kernel<scalar_t, int32_t> : bias_act_kernel<scalar_t, int64_t>;
    kernel<<<blocks, threads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), p.has_bias ? b.const_data_ptr<scalar_t>() : nullptr,
        p.grad > 0 ? dy.const_data_ptr<scalar_t>() : nullptr, out.mutable_data_ptr<scalar_t>(), p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace stylevid
