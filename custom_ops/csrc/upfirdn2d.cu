#include <algorithm>

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "upfirdn2d_core.h"

namespace stylevid {

template <typename scalar_t, typename I>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x,
                                 const acc_t<scalar_t>* __restrict__ f, scalar_t* __restrict__ y,
                                 Upfirdn2dParams p) {
  // The loop counter is 64-bit so `i += stride` cannot wrap; the element math uses I.
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.total; i += stride)
    upfirdn2d_element<scalar_t, I>(I(i), x, f, y, p);
}

void upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, at::Tensor& y,
                    const Upfirdn2dParams& p, bool i32) {
  const c10::cuda::CUDAGuard guard(x.device());
  // c10::cuda:: is what at::cuda::getCurrentCUDAStream aliases; ATen/cuda/CUDAContext.h would
  // also drag in cuBLAS/cuSPARSE headers that a bare toolkit may lack.
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  constexpr int threads = 256;
  // 16M threads saturate any current GPU; the grid-stride loop covers larger tensors.
  constexpr int64_t max_blocks = 65536;
  const unsigned blocks = unsigned(std::min((p.total + threads - 1) / threads, max_blocks));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(),
                                  "upfirdn2d_cuda", [&] {
    using acc = acc_t<scalar_t>;
    auto kernel = i32 ? upfirdn2d_kernel<scalar_t, int32_t> : upfirdn2d_kernel<scalar_t, int64_t>;
    kernel<<<blocks, threads, 0, stream>>>(x.const_data_ptr<scalar_t>(), f.const_data_ptr<acc>(),
                                           y.mutable_data_ptr<scalar_t>(), p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace stylevid
