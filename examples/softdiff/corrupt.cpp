// softdiff corrupt: y = C(level) x, or C(level)^T x with --adjoint, for a float32 or float64
// NCHW batch in a .npy file; the output keeps the input's dtype.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <string>

#include "args.hpp"
#include "commands.hpp"
#include "operators.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::cli {

namespace {

template <class T>
void corrupt(const arg_parser& a, const std::filesystem::path& in, const std::filesystem::path& out) {
  const std::string name = a.text("op");
  const int half_size = a.given("half-size") ? static_cast<int>(a.integer("half-size", 0, 1 << 20)) : -1;
  const any_operator<T> op = make_operator<T>(name, half_size);
  const double level = level_from_cli(name, a.number("level"), op.min_level(), op.max_level());

  const batch<T> x = data::read_npy_batch<T>(in);
  check_finite(x, in.c_str());
  batch<T> y;
  if (a.flag_set("adjoint"))
    op.apply_adjoint(level, x, y);
  else
    op.apply(level, x, y);
  // Finite inputs near the type's maximum can overflow in C's sums: refuse rather than write NaN.
  for (std::size_t i = 0; i < y.size(); ++i)
    if (!std::isfinite(y.data()[i]))
      throw error(detail::concat(in.string(), ": the result has the non-finite value ", y.data()[i], " at element ", i,
                                 " (the input's magnitudes overflow ", data::npy_descr(data::npy_dtype_of<T>()),
                                 "; scale the input down)"));
  data::write_npy(out, y);
  std::cout << "wrote " << out.string() << ": " << (a.flag_set("adjoint") ? "C^T" : "C") << " of " << name
            << " at --level " << a.text("level") << ", shape " << to_string(shape_of(y)) << ", "
            << data::npy_descr(data::npy_dtype_of<T>()) << "\n";
}

}  // namespace

int run_corrupt(const arguments& args) {
  arg_parser a("softdiff corrupt", "apply a corruption operator C (or its adjoint C^T) to a batch of images");
  a.required("op", "NAME", "operator: " + operator_names())
      .required("level", "L", "corruption level (meaning per operator, below)")
      .required("in", "X.npy", "input batch, float32 or float64, shape [N, C, H, W]")
      .required("out", "Y.npy", "output batch (same shape and dtype; written atomically)")
      .flag("adjoint", "apply C^T instead of C")
      .option("half-size", "N", "kernel half size of gaussian-blur and fft-conv (kernel (2N+1)^2)",
              std::to_string(default_half_size))
      .epilog("Levels:\n" + operator_help() +
              "\nExample:\n  softdiff corrupt --op gaussian-blur --level 2.5 --half-size 16 --in x.npy --out y.npy\n");
  if (!a.parse(args, std::cout)) return 0;

  (void)find_operator(a.text("op"));  // an unknown name is a usage error before any file is read
  const std::filesystem::path in = a.text("in"), out = a.text("out");
  const data::npy_header h = data::read_npy_header(in);
  switch (h.dtype) {
    case data::npy_dtype::float32: corrupt<float>(a, in, out); break;
    case data::npy_dtype::float64: corrupt<double>(a, in, out); break;
    default:
      throw error(in.string() + ": holds " + data::npy_descr(h.dtype) +
                  " data; corrupt needs float32 ('<f4') or float64 ('<f8')");
  }
  return 0;
}

}  // namespace softdiff::cli
