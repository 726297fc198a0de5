#pragma once
// Where the committed evaluation classifier lies (models/fashion_mnist_classifier.safetensors,
// written by `softdiff train-classifier`): examples/CMakeLists.txt passes the source tree's
// path as SOFTDIFF_DEFAULT_CLASSIFIER, so the tool finds it from any working directory.
#include <filesystem>

#ifndef SOFTDIFF_DEFAULT_CLASSIFIER
#define SOFTDIFF_DEFAULT_CLASSIFIER "models/fashion_mnist_classifier.safetensors"
#endif

namespace softdiff::cli {

/// The default --classifier of the commands that compute Frechet distances.
[[nodiscard]] inline std::filesystem::path default_classifier_path() { return SOFTDIFF_DEFAULT_CLASSIFIER; }

}  // namespace softdiff::cli
