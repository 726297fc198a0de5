#pragma once
// Runs the built softdiff tool (examples/softdiff) as a separate process for the tests/test_cli*
// files: exit status, stdout and stderr captured through files of a test::temp_dir.
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include "data_files.hpp"

namespace softdiff::test {

inline const std::string tool_path = SOFTDIFF_BINARY_DIR "/examples/softdiff";

#ifndef SOFTDIFF_POISON_LIBRARY
#define SOFTDIFF_POISON_LIBRARY ""
#endif
/// The environment that gives the tool the tests' NaN-filled heap (support/poison_heap.cpp):
/// `LD_PRELOAD=<library> `, or nothing in the sanitizer build.
[[nodiscard]] inline std::string poison_env() {
  const std::string lib = SOFTDIFF_POISON_LIBRARY;
  return lib.empty() ? std::string() : "LD_PRELOAD='" + lib + "' ";
}

struct cli_result {
  int status = -1;  // exit status; 128 + signal number when killed by a signal
  std::string out, err;
};
using result = cli_result;  // the tool tests bring these names in with `using namespace softdiff::test;`

/// `p` quoted for the shell.
[[nodiscard]] inline std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

[[nodiscard]] inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

/// Runs `[env] softdiff <args>` with stdout and stderr captured in files of `dir`.
inline cli_result run_tool(const temp_dir& dir, const std::string& args, const std::string& env = "") {
  const std::filesystem::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = poison_env() + env + " " + q(tool_path) + " " + args + " >" + q(out) + " 2>" + q(err);
  const int raw = std::system(cmd.c_str());
  cli_result r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + (WIFSIGNALED(raw) ? WTERMSIG(raw) : 0);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

/// The rows of a CSV file's text, each split at commas (no quoting: the tool writes none).
inline std::vector<std::vector<std::string>> read_csv(const std::filesystem::path& p) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_text(p));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::istringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace softdiff::test
