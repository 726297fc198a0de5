// softdiff sample: draws samples from a trained checkpoint (its EMA weights) with one of
// the reverse samplers of samplers.hpp: naive (Algorithm 1), momentum (Algorithm 2, eq. 17),
// pf_momentum (eq. 51), ddim (eq. 52) or predictor_corrector (DDIM predictor, probability-flow
// momentum corrector), starting from the final distribution stored in the checkpoint
// (appendix D). Samples are drawn in chunks of --chunk (memory bounded by the chunk, samples
// bitwise independent of it). Writes a PNG grid and the samples as a float .npy batch
// [K, C, H, W] beside it.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>

#include "args.hpp"
#include "commands.hpp"
#include "model_setup.hpp"
#include "samplers.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"

namespace softdiff::cli {

int run_sample(const arguments& args) {
  arg_parser a("softdiff sample", "sample images from a checkpoint; writes FILE.png and FILE.npy");
  a.required("ckpt", "FILE", "checkpoint written by softdiff train")
      .required("out", "FILE.png", "PNG grid of the samples; the samples also go to FILE.npy")
      .option("sampler", "NAME", sampler_help(), "momentum")
      .option("steps", "N", "sampler steps on the uniform grid from t = 1 to 0", "100")
      .option("count", "K", "number of samples", "64")
      .option("seed", "S", "seed of the initial draw and the sampler noise", "0")
      .option("k-ratio", "R", k_ratio_samplers() + ": noise k = R * sigma_{t'} of eq. 52, R in [0, 1]", "0")
      .option("chunk", "N", "samples per network batch; memory grows with N, the samples do not depend on it",
              std::to_string(default_chunk))
      .option("columns", "C", "grid columns (default: ceil(sqrt(K)))")
      .option("precision", "P", precision_help, "float32")
      .epilog("Example:\n  softdiff sample --ckpt run1/checkpoint.safetensors --sampler momentum --count 64 --out s.png\n");
  if (!a.parse(args, std::cout)) return 0;
  const sampler_entry& smp = find_sampler(a.text("sampler"));
  const std::string name(smp.name);
  const auto steps = static_cast<std::size_t>(a.integer("steps", 1, 1000000));
  const auto count = static_cast<std::size_t>(a.integer("count", 1, 1 << 20));
  const auto seed = static_cast<std::uint64_t>(a.integer("seed", 0, std::numeric_limits<long>::max()));
  const double k_ratio = a.number("k-ratio");
  if (!(k_ratio >= 0 && k_ratio <= 1)) throw usage_error("--k-ratio must lie in [0, 1]");
  if (a.given("k-ratio") && !smp.takes_k_ratio)
    throw usage_error("--k-ratio applies to " + k_ratio_samplers() + " only, not to --sampler " + name);
  const auto chunk = static_cast<std::size_t>(a.integer("chunk", 1, 1 << 20));
  std::size_t columns = 1;
  while (columns * columns < count) ++columns;
  if (a.given("columns")) columns = static_cast<std::size_t>(a.integer("columns", 1, 1 << 20));
  const std::filesystem::path png = a.text("out");
  if (png.extension() != ".png") throw usage_error("--out " + png.string() + " must end in .png");
  std::filesystem::path npy = png;
  npy.replace_extension(".npy");

  loaded_model m = load_model(a.text("ckpt"));
  const nn::precision precision = apply_precision(m, a.text("precision"), std::cerr);
  const auto t0 = std::chrono::steady_clock::now();
  std::cerr << "sample: " << count << " samples, " << name << ", " << steps << " steps ..." << std::flush;
  const batch<float> x = draw_samples(m.model, smp, count, steps, seed, k_ratio, chunk, step_ticker{});
  std::cerr << " done\n";
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  data::write_npy(npy, x);
  data::write_png_grid(png, x, columns);
  std::cout << "wrote " << png.string() << " and " << npy.string() << ": " << count << " samples, " << name << ", "
            << steps << " steps (" << network_evaluations(m.model, smp, steps)
            << " network evaluations per sample), " << secs << " s, " << nn::precision_name(precision)
            << "; checkpoint step " << m.step << "\n";
  return 0;
}

}  // namespace softdiff::cli
