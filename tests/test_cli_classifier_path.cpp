// Where the softdiff tool looks for its default evaluation classifier
// (examples/softdiff/classifier_path.hpp): next to its own executable first, then the
// compiled-in source-tree path, and, when neither exists, a default that names both places,
// so that `softdiff eval`'s "does not exist" error does too. Both places are redirected here
// to scratch files beside this test's executable. The installed tool itself is tested by
// tests/package/installed_tool.cmake.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

// Relative to the directory of the running executable, as the installed path is.
#define SOFTDIFF_INSTALLED_CLASSIFIER "classifier_path_probe/installed.safetensors"
#define SOFTDIFF_SOURCE_TREE_CLASSIFIER SOFTDIFF_BINARY_DIR "/tests/classifier_path_probe/source.safetensors"
#include "../examples/softdiff/classifier_path.hpp"

namespace fs = std::filesystem;

TEST_CASE("the tool's default classifier: beside the executable, then the source tree, else both named",
          "[cli][classifier]") {
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  const fs::path installed = (exe_dir / SOFTDIFF_INSTALLED_CLASSIFIER).lexically_normal();
  const fs::path source = SOFTDIFF_SOURCE_TREE_CLASSIFIER;
  fs::remove_all(exe_dir / "classifier_path_probe");
  fs::remove_all(source.parent_path());

  REQUIRE(softdiff::cli::classifier_candidates() == std::vector<fs::path>{installed, source});
  // neither exists: the default names both places, in the order they are tried
  CHECK(softdiff::cli::default_classifier_option() == installed.string() + " or " + source.string());
  CHECK(std::string(SOFTDIFF_DEFAULT_CLASSIFIER) == softdiff::cli::default_classifier_option());

  fs::create_directories(source.parent_path());
  std::ofstream(source) << "x";
  CHECK(softdiff::cli::default_classifier_option() == source.string());

  fs::create_directories(installed.parent_path());
  std::ofstream(installed) << "x";
  CHECK(softdiff::cli::default_classifier_option() == installed.string());  // preferred

  fs::remove_all(exe_dir / "classifier_path_probe");
  fs::remove_all(source.parent_path());
}
