#pragma once
// The evaluation classifier: a small CNN built from softdiff's own layers, trained on the
// Fashion-MNIST labels (`softdiff train-classifier`), whose penultimate features give the
// Frechet distance of generated images (metrics/frechet.hpp), as the Inception network does
// for FID. With config c (defaults in brackets), x [N, C, H, W] in [-1, 1]:
//   conv3x3(C -> c1 [32], stride 1) GN SiLU      [N, 32, 28, 28]
//   conv3x3(c1 -> c2 [64], stride 2) GN SiLU     [N, 64, 14, 14]
//   conv3x3(c2 -> c3 [64], stride 2) GN SiLU     [N, 64, 7, 7]
//   conv3x3(c3 -> c4 [64], stride 1) GN SiLU     [N, 64, 7, 7]
//   global average pool                          [N, 64]
//   linear(c4 -> F [128]) SiLU = features        [N, 128]
//   linear(F -> K [10]) = logits                 [N, 10]
// Weights live in one parameter_store (names "conv1.weight", "norm1.bias", "fc1.weight",
// "fc2.bias", ...) so adam.hpp trains them and checkpoint.hpp stores them in safetensors,
// with __metadata__ "classifier_config" (classifier_config.hpp) and "softdiff_classifier"
// (info(): test accuracy, seed, epochs, data).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <xtensor/xtensor.hpp>

#include "softdiff/concepts.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/error.hpp"
#include "softdiff/nn/checkpoint.hpp"
#include "softdiff/nn/classifier_config.hpp"
#include "softdiff/nn/conv2d.hpp"
#include "softdiff/nn/cross_entropy.hpp"
#include "softdiff/nn/global_pool.hpp"
#include "softdiff/nn/group_norm.hpp"
#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/linear.hpp"
#include "softdiff/nn/parameter_store.hpp"
#include "softdiff/nn/silu.hpp"
#include "softdiff/random.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::nn {

inline constexpr std::uint64_t classifier_init_stream = stream_for(stream_purpose::user, 0x434c'4153);
inline constexpr const char* classifier_info_key = "softdiff_classifier";

template <class T = float>
class classifier {
public:
  using scalar_type = T;
  static constexpr std::size_t conv_count = 4;
  static constexpr std::size_t chunk_size = 256;  // images per forward in features() / predict()

  explicit classifier(const classifier_config& c = {}, std::uint64_t seed = 0) : cfg_(c) {
    cfg_.validate();
    const std::array<std::size_t, conv_count + 1> ch{c.in_channels, c.channels1, c.channels2, c.channels3,
                                                     c.channels4};
    const std::array<std::size_t, conv_count> stride{1, 2, 2, 1};
    for (std::size_t i = 0; i < conv_count; ++i) {
      conv_[i] = conv2d<T>(ch[i], ch[i + 1], 3, stride[i]);
      norm_[i] = group_norm<T>(c.groups, ch[i + 1]);
      conv_[i].declare(store_, "conv" + std::to_string(i + 1));
      norm_[i].declare(store_, "norm" + std::to_string(i + 1));
    }
    fc1_ = linear<T>(c.channels4, c.feature_count);
    fc2_ = linear<T>(c.feature_count, c.classes);
    fc1_.declare(store_, "fc1");
    fc2_.declare(store_, "fc2");
    store_.allocate();
    bind();
    const noise_source noise{seed, classifier_init_stream};
    for (std::size_t i = 0; i < conv_count; ++i) conv_[i].init(noise), norm_[i].init(noise);
    fc1_.init(noise);
    fc2_.init(noise);
    info_ = nlohmann::json::object();
  }

  classifier(const classifier&) = delete;  // the layers' spans point into this object's store
  classifier& operator=(const classifier&) = delete;
  classifier(classifier&&) noexcept = default;  // the store's buffers move with it, the spans stay valid
  classifier& operator=(classifier&&) noexcept = default;

  /// Reads weights written by save(). Throws softdiff::error if the file is unreadable or
  /// truncated, is not a classifier (e.g. a RefUNet checkpoint), or its tensors do not match
  /// its configuration, or hold a non-finite weight.
  [[nodiscard]] static classifier load(const std::filesystem::path& file) {
    const data::safetensors_file f = data::read_safetensors(file);
    softdiff::detail::require(f.metadata.contains(classifier_config::metadata_key) && f.metadata.contains(classifier_info_key),
                    "classifier: '", file.string(), "' is not a softdiff classifier (no __metadata__ '",
                    classifier_config::metadata_key, "' and '", classifier_info_key,
                    "'; write one with softdiff train-classifier)");
    classifier_config c;
    try {
      c = metadata_json(f, classifier_config::metadata_key).template get<classifier_config>();
    } catch (const nlohmann::json::exception& e) {
      throw error(softdiff::detail::concat("classifier: '", file.string(), "': ", e.what()));
    } catch (const error& e) {
      throw error(softdiff::detail::concat("classifier: '", file.string(), "': ", e.what()));
    }
    classifier net(c);
    load_weights(f, net.store_);
    const std::span<const T> w = net.store_.parameters();
    for (std::size_t i = 0; i < w.size(); ++i)
      softdiff::detail::require(std::isfinite(static_cast<double>(w[i])), "classifier: '", file.string(),
                      "' holds a non-finite weight at flat index ", i);
    net.info_ = metadata_json(f, classifier_info_key);
    return net;
  }

  /// Writes the weights (F32 for float, F64 for double) and metadata to `file` (temporary name,
  /// then rename). `info` replaces info() when it is not empty.
  void save(const std::filesystem::path& file, const nlohmann::json& info = {}) const {
    nlohmann::json meta = info.is_null() || info.empty() ? info_ : info;
    if (!meta.is_object()) meta = nlohmann::json{{"info", meta}};
    meta["format"] = "softdiff-classifier";
    meta["version"] = 1;
    data::safetensors_writer w;
    add_tensors<T>(w, store_.entries(), "", store_.parameters());
    w.set_metadata(classifier_config::metadata_key, nlohmann::json(cfg_).dump());
    w.set_metadata(classifier_info_key, meta.dump());
    w.write(file);
  }

  [[nodiscard]] const classifier_config& config() const { return cfg_; }
  [[nodiscard]] std::size_t feature_count() const { return cfg_.feature_count; }
  [[nodiscard]] const nlohmann::json& info() const { return info_; }
  void set_info(nlohmann::json info) { info_ = std::move(info); }

  /// Penultimate features [N, feature_count] of images x [N, C, H, W] in [-1, 1], any N
  /// (chunk_size images per forward).
  [[nodiscard]] xt::xtensor<T, 2> features(const batch<T>& x) {
    check_images(x, "features");
    const std::size_t N = x.shape()[0], F = cfg_.feature_count;
    xt::xtensor<T, 2> out(std::array<std::size_t, 2>{N, F});
    for_chunks(x, [&](std::size_t first, std::size_t n) {
      std::copy(penultimate().data(), penultimate().data() + n * F, out.data() + first * F);
    });
    return out;
  }

  /// The most likely class of each image.
  [[nodiscard]] std::vector<std::size_t> predict(const batch<T>& x) {
    check_images(x, "predict");
    std::vector<std::size_t> out(x.shape()[0]);
    for_chunks(x, [&](std::size_t first, std::size_t n) {
      argmax_rows(fc2_.y, std::span<std::size_t>(out.data() + first, n));
    });
    return out;
  }

  // ---- training ------------------------------------------------------------------------------

  /// Logits [N, classes] of x (one forward, no chunking); x must stay alive until backward.
  const matrix<T>& logits(const batch<T>& x) {
    check_shape(x, "logits");
    const batch<T>* h = &x;
    for (std::size_t i = 0; i < conv_count; ++i) h = &act_[i].forward(norm_[i].forward(conv_[i].forward(*h)));
    return fc2_.forward(fact_.forward(fc1_.forward(pool_.forward(*h))));
  }
  /// The features of the last logits() call, [N, feature_count].
  [[nodiscard]] const matrix<T>& penultimate() const { return fact_.y; }

  /// Adds dL/dparameters for the last logits() call into store().gradients(), given dL/dlogits.
  /// need_dx: also compute dL/dx (input_gradient()), which training does not need.
  void backward(const matrix<T>& dlogits, bool need_dx = false) {
    const matrix<T>& df = fc1_.backward(fact_.backward(fc2_.backward(dlogits)));
    const batch<T>* g = &pool_.backward(df);
    for (std::size_t i = conv_count; i-- > 0;)
      g = &conv_[i].backward(norm_[i].backward(act_[i].backward(*g)), i > 0 || need_dx);
  }
  [[nodiscard]] const batch<T>& input_gradient() const { return conv_[0].dx; }

  [[nodiscard]] parameter_store<T>& store() { return store_; }
  [[nodiscard]] const parameter_store<T>& store() const { return store_; }

private:
  void bind() {
    for (std::size_t i = 0; i < conv_count; ++i) conv_[i].bind(store_), norm_[i].bind(store_);
    fc1_.bind(store_);
    fc2_.bind(store_);
  }

  void check_shape(const batch<T>& x, const char* what) const {
    const shape4 s = shape_of(x);
    softdiff::detail::require(s[1] == cfg_.in_channels && s[2] == cfg_.height && s[3] == cfg_.width, "classifier::", what,
                    ": images ", to_string(s), " do not match the classifier's input ",
                    to_string(shape4{s[0], cfg_.in_channels, cfg_.height, cfg_.width}));
  }
  void check_images(const batch<T>& x, const char* what) const {
    check_shape(x, what);
    const std::size_t per = cfg_.in_channels * cfg_.height * cfg_.width;
    const T* p = x.data();
    for (std::size_t i = 0; i < x.size(); ++i)
      softdiff::detail::require(std::isfinite(static_cast<double>(p[i])), "classifier::", what, ": image ", i / per,
                      " of ", to_string(shape_of(x)), " holds a non-finite value (", static_cast<double>(p[i]),
                      ") at flat index ", i);
  }
  /// Runs logits() over chunks of x, then on_chunk(first image, images in the chunk).
  template <class F>
  void for_chunks(const batch<T>& x, F&& on_chunk) {
    const std::size_t N = x.shape()[0], per = cfg_.in_channels * cfg_.height * cfg_.width;
    for (std::size_t first = 0; first < N; first += chunk_size) {
      const std::size_t n = std::min(chunk_size, N - first);
      ensure_shape(chunk_, shape4{n, cfg_.in_channels, cfg_.height, cfg_.width});
      std::copy(x.data() + first * per, x.data() + (first + n) * per, chunk_.data());
      logits(chunk_);
      on_chunk(first, n);
    }
  }

  classifier_config cfg_;
  parameter_store<T> store_;
  std::array<conv2d<T>, conv_count> conv_;
  std::array<group_norm<T>, conv_count> norm_;
  std::array<silu<T>, conv_count> act_;
  global_average_pool<T> pool_;
  linear<T> fc1_, fc2_;
  silu<T, 2> fact_;
  batch<T> chunk_;
  nlohmann::json info_;
};

static_assert(FeatureExtractor<classifier<float>>);
static_assert(FeatureExtractor<classifier<double>>);

}  // namespace softdiff::nn
