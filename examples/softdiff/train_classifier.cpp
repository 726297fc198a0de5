// softdiff train-classifier: trains the evaluation classifier (nn/classifier.hpp) on the labels
// of a Fashion-MNIST-layout dataset with softmax cross-entropy and Adam, evaluates it on the
// 10,000 test images and writes its weights with the test accuracy, seed, epochs, options and
// data in the file's metadata. The weights saved are an exponential moving average of Adam's
// iterates (nn/ema.hpp), which evaluates better than the last iterate at a constant rate.
// Seeded: initialisation and the per-epoch order of the images come from Philox streams.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"
#include "softdiff/data/idx.hpp"
#include "softdiff/nn/adam.hpp"
#include "softdiff/nn/classifier.hpp"
#include "softdiff/nn/ema.hpp"
#include "softdiff/train/minibatch.hpp"

namespace softdiff::cli {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Fraction of the first `count` predictions that match the labels.
double accuracy(const std::vector<std::size_t>& predicted, const std::vector<std::uint8_t>& labels, std::size_t count) {
  count = std::min(count, predicted.size());
  std::size_t right = 0;
  for (std::size_t i = 0; i < count; ++i) right += predicted[i] == labels[i] ? 1 : 0;
  return count == 0 ? 0.0 : static_cast<double>(right) / static_cast<double>(count);
}

/// The test images whose accuracy is also recorded on its own, so that a quick check (the
/// committed weights' test in tests/test_nn_classifier.cpp) can compare against it exactly.
constexpr std::size_t head_count = 2000;

}  // namespace

int run_train_classifier(const arguments& args) {
  arg_parser a("softdiff train-classifier",
               "train the evaluation classifier (its penultimate features give Frechet distances) on Fashion-MNIST labels");
  a.required("out", "FILE", "weights to write (.safetensors), with the test accuracy in its metadata")
      .option("data", "DIR", "directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; default: " +
                                 data::default_fashion_mnist_dir().string())
      .option("epochs", "E", "passes over the training images", "8")
      .option("batch", "B", "images per step", "64")
      .option("lr", "LR", "Adam learning rate", "1e-3")
      .option("ema-decay", "D", "decay of the weights' moving average that is saved", "0.999")
      .option("seed", "S", "seed of initialisation and image order", "0")
      .option("limit", "N", "use only the first N training images")
      .option("report-every", "N", "progress line every N steps", "100")
      .epilog("Example (how models/fashion_mnist_classifier.safetensors was made):\n"
              "  OMP_NUM_THREADS=2 softdiff train-classifier --out models/fashion_mnist_classifier.safetensors\n");
  if (!a.parse(args, std::cout)) return 0;
  const fs::path out = a.text("out");
  const fs::path dir = a.given("data") ? fs::path(a.text("data")) : data::default_fashion_mnist_dir();
  const auto epochs = static_cast<std::size_t>(a.integer("epochs", 1, 10000));
  const auto batch_size = static_cast<std::size_t>(a.integer("batch", 1, 1 << 16));
  const auto seed = static_cast<std::uint64_t>(a.integer("seed", 0, std::numeric_limits<long>::max()));
  const auto report_every = static_cast<std::size_t>(a.integer("report-every", 1, std::numeric_limits<long>::max()));
  const std::size_t limit =
      a.given("limit") ? static_cast<std::size_t>(a.integer("limit", 1, std::numeric_limits<long>::max())) : data::no_limit;
  nn::adam_config opt;
  opt.lr = a.number("lr");
  if (!(opt.lr > 0)) throw usage_error("--lr must be > 0");
  opt.warmup_steps = 200;
  opt.max_grad_norm = 5.0;
  const double ema_decay = a.number("ema-decay");
  if (!(ema_decay >= 0 && ema_decay < 1)) throw usage_error("--ema-decay must lie in [0, 1)");

  const auto train_set = data::read_fashion_mnist<float>("train", dir, limit);
  const auto test_set = data::read_fashion_mnist<float>("t10k", dir);
  const std::size_t M = train_set.images.shape()[0];
  nn::classifier_config cfg;
  cfg.in_channels = train_set.images.shape()[1];
  cfg.height = train_set.images.shape()[2];
  cfg.width = train_set.images.shape()[3];
  nn::classifier<float> net(cfg, seed);
  nn::parameter_store<float>& store = net.store();
  nn::adam<float> adam(store.size(), opt);
  nn::ema<float> average(store.parameters(), ema_decay);
  nn::softmax_cross_entropy<float> loss;
  std::cout << "train-classifier: " << M << " training and " << test_set.images.shape()[0] << " test images from "
            << dir.string() << ", " << store.size() << " parameters, " << epochs << " epochs of "
            << (M + batch_size - 1) / batch_size << " steps (batch " << batch_size << ")\n";

  const std::size_t per = cfg.in_channels * cfg.height * cfg.width;
  batch<float> xb;
  std::vector<std::size_t> order, labels;
  const auto t0 = clock_type::now();
  std::size_t step = 0;
  for (std::size_t epoch = 0; epoch < epochs; ++epoch) {
    train::epoch_order(seed, epoch, order, M);
    double loss_sum = 0;
    std::size_t loss_steps = 0, seen = 0, right = 0;
    std::vector<std::size_t> guess;
    for (std::size_t first = 0; first < M; first += batch_size) {
      const std::size_t n = std::min(batch_size, M - first);
      nn::detail::ensure_shape(xb, shape4{n, cfg.in_channels, cfg.height, cfg.width});
      labels.resize(n), guess.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t j = order[first + i];
        std::copy(train_set.images.data() + j * per, train_set.images.data() + (j + 1) * per, xb.data() + i * per);
        labels[i] = train_set.labels[j];
      }
      const auto& z = net.logits(xb);
      loss_sum += loss.forward(z, labels);
      nn::argmax_rows(z, std::span<std::size_t>(guess));
      for (std::size_t i = 0; i < n; ++i) right += guess[i] == labels[i] ? 1 : 0;
      seen += n, ++loss_steps, ++step;
      store.zero_grad();
      net.backward(loss.backward());
      adam.step(store.parameters(), store.gradients());
      average.update(store.parameters());
      if (step % report_every == 0 || first + n == M) {
        std::printf("epoch %zu/%zu  step %zu  loss %.4f  running accuracy %.4f  %.0fs\n", epoch + 1, epochs, step,
                    loss_sum / static_cast<double>(loss_steps), static_cast<double>(right) / static_cast<double>(seen),
                    seconds_since(t0));
        std::fflush(stdout);
        loss_sum = 0, loss_steps = 0;
      }
    }
  }
  const double train_seconds = seconds_since(t0);
  std::string command_line = "softdiff train-classifier";
  for (const std::string& arg : args) command_line += " " + arg;
  std::copy(average.weights().begin(), average.weights().end(), store.parameters().begin());
  const std::vector<std::size_t> predicted = net.predict(test_set.images);
  const double test_accuracy = accuracy(predicted, test_set.labels, predicted.size());
  const double head_accuracy = accuracy(predicted, test_set.labels, head_count);
  std::printf("test accuracy %.4f on %zu images (training %.0fs)\n", test_accuracy, test_set.labels.size(),
              train_seconds);

  nlohmann::json info{{"test_accuracy", test_accuracy},
                      {"test_images", test_set.labels.size()},
                      {"test_accuracy_first_2000", head_accuracy},
                      {"train_images", M},
                      {"seed", seed},
                      {"epochs", epochs},
                      {"batch", batch_size},
                      {"lr", opt.lr},
                      {"warmup_steps", opt.warmup_steps},
                      {"max_grad_norm", opt.max_grad_norm},
                      {"ema_decay", ema_decay},
                      {"steps", step},
                      {"training_seconds", train_seconds},
                      {"data", fs::absolute(dir).lexically_normal().string()},
                      {"dataset", "Fashion-MNIST"},
                      {"command", command_line},
                      {"config", cfg}};
  net.save(out, info);
  std::cout << "wrote " << out.string() << "\n";
  return 0;
}

}  // namespace softdiff::cli
