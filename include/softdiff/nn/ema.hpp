#pragma once
// Exponential moving average of the weights, used for sampling:
//   ema <- decay * ema + (1 - decay) * p   after every optimiser step.
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "softdiff/backend/cpu.hpp"
#include "softdiff/error.hpp"

namespace softdiff::nn {

template <class T = float>
class ema {
public:
  ema() = default;
  /// Starts the average at the current parameters.
  ema(std::span<const T> params, double decay) : decay_(decay), avg_(params.begin(), params.end()) {
    softdiff::detail::require(decay >= 0 && decay < 1, "ema: decay must lie in [0, 1), got ", decay);
  }
  void update(std::span<const T> params) {
    softdiff::detail::require(params.size() == avg_.size(), "ema: expected ", avg_.size(), " parameters, got ", params.size());
    const T d = static_cast<T>(decay_), c = static_cast<T>(1 - decay_);
    const T* p = params.data();
    T* a = avg_.data();
    backend::cpu::parallel_for(avg_.size(), [=](std::size_t i) { a[i] = d * a[i] + c * p[i]; });
  }
  [[nodiscard]] double decay() const { return decay_; }
  [[nodiscard]] std::span<T> weights() { return avg_; }
  [[nodiscard]] std::span<const T> weights() const { return avg_; }

private:
  double decay_ = 0.9999;
  std::vector<T> avg_;
};

}  // namespace softdiff::nn
