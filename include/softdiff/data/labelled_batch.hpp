#pragma once
// What the labelled-dataset readers (IDX pairs, CIFAR-10) return.
#include <cstdint>
#include <vector>

#include "softdiff/tensor.hpp"

namespace softdiff::data {

/// Images [N, C, H, W] in [-1, 1] and one class label per image (labels.size() == N),
/// or no labels at all (empty) where the source has none.
template <class T = float>
struct labelled_batch {
  batch<T> images;
  std::vector<std::uint8_t> labels;
};

}  // namespace softdiff::data
