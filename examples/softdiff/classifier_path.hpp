#pragma once
// Where the tool finds the committed evaluation classifier (models/fashion_mnist_classifier.safetensors,
// written by `softdiff train-classifier`) when --classifier is not given. In order:
//  1. SOFTDIFF_INSTALLED_CLASSIFIER relative to the directory of the running executable: where
//     `cmake --install` puts it (bin/../share/softdiff/ by default). Found through the executable
//     rather than a compiled-in prefix, so the tool also works from a moved or copied prefix.
//  2. SOFTDIFF_SOURCE_TREE_CLASSIFIER: the source tree's copy, for the tool in its build tree.
// examples/CMakeLists.txt sets both. The executable's path comes from /proc/self/exe (Linux);
// where that is unavailable, step 1 is skipped.
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#ifndef SOFTDIFF_INSTALLED_CLASSIFIER
#define SOFTDIFF_INSTALLED_CLASSIFIER "../share/softdiff/fashion_mnist_classifier.safetensors"
#endif
#ifndef SOFTDIFF_SOURCE_TREE_CLASSIFIER
#define SOFTDIFF_SOURCE_TREE_CLASSIFIER "models/fashion_mnist_classifier.safetensors"
#endif

namespace softdiff::cli {

/// The places the default classifier is looked for, in order of preference.
[[nodiscard]] inline std::vector<std::filesystem::path> classifier_candidates() {
  namespace fs = std::filesystem;
  std::vector<fs::path> places;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && exe.has_parent_path())
    places.push_back((exe.parent_path() / SOFTDIFF_INSTALLED_CLASSIFIER).lexically_normal());
  places.emplace_back(SOFTDIFF_SOURCE_TREE_CLASSIFIER);
  return places;
}

/// The default --classifier: the first candidate that exists. When none does there is no
/// file to name, so the text lists every place looked in ("A or B"): the help shows where the
/// classifier is expected, and the command's "classifier '...' does not exist" error names
/// both places.
[[nodiscard]] inline std::string default_classifier_option() {
  const std::vector<std::filesystem::path> places = classifier_candidates();
  std::string all;
  for (const std::filesystem::path& p : places) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(p, ec)) return p.string();
    all += (all.empty() ? "" : " or ") + p.string();
  }
  return all;
}

}  // namespace softdiff::cli

// The spelling the commands use for their --classifier default.
#define SOFTDIFF_DEFAULT_CLASSIFIER ::softdiff::cli::default_classifier_option()
