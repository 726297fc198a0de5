#pragma once
// Batched 2-D real FFTs on a backend: fft_engine<B, T> transforms `planes` contiguous
// ph x pw real planes to ph x (pw/2 + 1) half spectra (interleaved re, im) and back,
// unnormalised like FFTW (c2r(r2c(x)) = ph pw x). backend::cuda's engine (cuFFT, a plan
// cache) is in backend/cuda/fft.cuh; backend::cpu's runs FFTW plane by plane, so that the
// portable operators (portable/operators.hpp) run, and are tested, on the host too.
#include <algorithm>
#include <complex>
#include <cstddef>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/backend/fftw.hpp"

namespace softdiff::backend::portable {

template <class B, class T>
class fft_engine;

template <class T>
class fft_engine<cpu, T> {
public:
  /// out (planes x ph x (pw/2+1) complex, interleaved) = DFT of each ph x pw plane of in.
  void r2c(int ph, int pw, std::size_t planes, const T* in, T* out) {
    const auto& plan = fftw::cached_plan<T>(fftw::transform::r2c, ph, pw);
    prepare(ph, pw);
    const std::size_t nr = real_size(ph, pw), nc = complex_size(ph, pw);
    for (std::size_t p = 0; p < planes; ++p) {
      std::copy(in + p * nr, in + (p + 1) * nr, real_.data());
      plan.r2c(real_.data(), spec_.data());
      const T* s = reinterpret_cast<const T*>(spec_.data());
      std::copy(s, s + 2 * nc, out + p * 2 * nc);
    }
  }
  /// out (planes x ph x pw) = unnormalised inverse DFT of each half spectrum of in.
  void c2r(int ph, int pw, std::size_t planes, const T* in, T* out) {
    const auto& plan = fftw::cached_plan<T>(fftw::transform::c2r, ph, pw);
    prepare(ph, pw);
    const std::size_t nr = real_size(ph, pw), nc = complex_size(ph, pw);
    for (std::size_t p = 0; p < planes; ++p) {
      T* s = reinterpret_cast<T*>(spec_.data());
      std::copy(in + p * 2 * nc, in + (p + 1) * 2 * nc, s);
      plan.c2r(spec_.data(), real_.data());
      std::copy(real_.data(), real_.data() + nr, out + p * nr);
    }
  }

private:
  static std::size_t real_size(int ph, int pw) { return static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw); }
  static std::size_t complex_size(int ph, int pw) {
    return static_cast<std::size_t>(ph) * static_cast<std::size_t>(pw / 2 + 1);
  }
  // FFTW executes plans only on arrays aligned like the ones they were made on (fftw.hpp).
  void prepare(int ph, int pw) {
    real_.resize(real_size(ph, pw));
    spec_.resize(complex_size(ph, pw));
  }
  fftw::buffer<T> real_;
  fftw::buffer<std::complex<T>> spec_;
};

}  // namespace softdiff::backend::portable
