#pragma once
// The subcommands of the softdiff tool. Each lives in its own file (corrupt.cpp,
// forward_process.cpp, ...) as `int run_<name>(args)`: it receives the arguments after its
// name, returns the exit status, and throws usage_error (exit 2) or softdiff::error (exit 1),
// which main prints. To add one: write <name>.cpp, declare it here, add a row to command_table.
#include <string>
#include <string_view>
#include <vector>

namespace softdiff::cli {

using arguments = std::vector<std::string>;

int run_corrupt(const arguments& args);
int run_forward_process(const arguments& args);
int run_train(const arguments& args);
int run_sample(const arguments& args);
int run_denoise(const arguments& args);
int run_schedule(const arguments& args);
int run_eval(const arguments& args);
int run_train_classifier(const arguments& args);

struct command {
  std::string_view name;
  std::string_view summary;
  int (*run)(const arguments&);
};

inline constexpr command command_table[] = {
    {"corrupt", "apply an operator C (or C^T) at a level to a .npy batch", run_corrupt},
    {"forward-process", "PNG strip of one image corrupted at increasing t (blur, mask, ...)", run_forward_process},
    {"train", "train RefUNet with Soft Score Matching on images (checkpoints, sample grids, resume)", run_train},
    {"sample", "sample a PNG grid (and .npy) from a checkpoint with a chosen sampler", run_sample},
    {"denoise", "run a checkpoint's network on a .npy batch at time t: phi or E[x0 | x_t]", run_denoise},
    {"schedule", "Wasserstein schedule of an operator's levels on a data slice (JSON and a plot)",
     run_schedule},
    {"eval", "Frechet distance, sliced W, precision/recall against NFE per sampler and step count", run_eval},
    {"train-classifier", "train the evaluation classifier on Fashion-MNIST labels (weights + test accuracy)",
     run_train_classifier},
};

}  // namespace softdiff::cli
