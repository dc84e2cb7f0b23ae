// Shared by the CUDA kernels (nvcc) and the CPU emulator (g++): the per-element math is written
// once, so the emulator's tests cover exactly what runs on the GPU.
#pragma once

#include <math.h>

#include <cstdint>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#ifdef __CUDACC__
#define STYLEVID_HD __host__ __device__
#else
#define STYLEVID_HD
#endif

namespace stylevid {

// Accumulation type. Left undefined for other types so unsupported dtypes fail at compile time.
template <typename T> struct acc_type;
template <> struct acc_type<double> { using type = double; };
template <> struct acc_type<float> { using type = float; };
template <> struct acc_type<c10::Half> { using type = float; };
template <> struct acc_type<c10::BFloat16> { using type = float; };
template <typename T> using acc_t = typename acc_type<T>::type;

// The C names resolve identically on host and device; std:: overloads are not all device-callable.
STYLEVID_HD inline float sv_exp(float v) { return expf(v); }
STYLEVID_HD inline double sv_exp(double v) { return exp(v); }
STYLEVID_HD inline float sv_expm1(float v) { return expm1f(v); }
STYLEVID_HD inline double sv_expm1(double v) { return expm1(v); }
STYLEVID_HD inline float sv_log1p(float v) { return log1pf(v); }
STYLEVID_HD inline double sv_log1p(double v) { return log1p(v); }
STYLEVID_HD inline float sv_tanh(float v) { return tanhf(v); }
STYLEVID_HD inline double sv_tanh(double v) { return tanh(v); }
STYLEVID_HD inline float sv_abs(float v) { return fabsf(v); }
STYLEVID_HD inline double sv_abs(double v) { return fabs(v); }

// C++ '%' keeps the dividend's sign; tap alignment needs a remainder in [0, b).
template <typename I> STYLEVID_HD inline I pos_mod(I a, I b) {
  const I r = a % b;
  return r < 0 ? r + b : r;
}

}  // namespace stylevid
