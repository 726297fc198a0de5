// softdiff denoise: runs a checkpoint's network (EMA weights) on a batch x_t at one time t:
// --output phi writes the raw output phi(x_t, t) (the predicted residual x_0 - x_t, eq. 8),
// --output x0 writes the estimate E[x_0 | x_t] = phi(x_t, t) + x_t (eq. 10).
#include <iostream>
#include <string>

#include "args.hpp"
#include "commands.hpp"
#include "model_setup.hpp"
#include "softdiff/data/npy.hpp"

namespace softdiff::cli {

int run_denoise(const arguments& args) {
  arg_parser a("softdiff denoise", "apply a checkpoint's denoiser to a .npy batch at time t");
  a.required("ckpt", "FILE", "checkpoint written by softdiff train")
      .required("in", "X.npy", "input batch x_t [N, C, H, W] (float or uint8 .npy)")
      .required("t", "T", "time t in [0, 1] of every image")
      .required("out", "Y.npy", "output batch, same shape, float32")
      .option("output", "WHAT", "phi (network output) or x0 (phi + x_t, the estimate of x_0)", "x0")
      .epilog("Example:\n  softdiff denoise --ckpt run1/checkpoint.safetensors --in xt.npy --t 0.5 --output x0 "
              "--out x0.npy\n");
  if (!a.parse(args, std::cout)) return 0;
  const std::string what = a.text("output");
  if (what != "phi" && what != "x0") throw usage_error("--output must be phi or x0, not '" + what + "'");
  const double t = a.number("t");
  if (!(t >= 0 && t <= 1)) throw usage_error("--t must lie in [0, 1]");

  const batch<float> x = data::read_npy_batch<float>(a.text("in"));
  loaded_model m = load_model(a.text("ckpt"));
  const shape4 s = shape_of(x);
  const std::string where = "softdiff denoise: " + a.text("in");
  detail::require(s[0] > 0, where, ": empty batch ", to_string(s));
  detail::require(s[1] == m.net.in_channels, where, ": ", s[1], " channels, but the checkpoint's network takes ",
                  m.net.in_channels);
  m.net.check_image_size(s[2], s[3], where.c_str());
  check_finite(x, where.c_str());
  batch<float> y;
  if (what == "x0") {
    m.model.denoise(x, t, y);
  } else {
    const std::vector<double> times(s[0], t);
    m.model.network().predict(x, times, y);
  }
  data::write_npy(a.text("out"), y);
  std::cout << "wrote " << a.text("out") << ": " << what << " for " << s[0] << " images " << s[1] << "x" << s[2] << "x"
            << s[3] << " at t = " << t << " (checkpoint step " << m.step << ")\n";
  return 0;
}

}  // namespace softdiff::cli
