#pragma once
// RefUNet, the reference network of softdiff, exactly as docs/refunet.md specifies it,
// with hand-written forward and backward passes assembled from the layers of softdiff::nn.
//
// It is the phi of the paper's parametrisation (eq. 8, 10): phi(x_t, t) predicts the residual
// r_t = x_0 - x_t, so h = phi(x_t, t) + x_t estimates x_0. It models TrainableDenoiser.
//
// Wiring (docs/refunet.md, "Wiring"; L = levels, B = num_res_blocks, temb = time embedding of t):
//   h = conv_in(x);  skips = [h]
//   level i = 0..L-1:  B x  h = down.i.res.j(h, temb), push h;   i < L-1: h = down.i.down(h), push h
//   h = mid.res.0(h); h = mid.attn(h) (attn_at_lowest); h = mid.res.1(h)
//   level i = L-1..0:  B+1 x h = up.i.res.j(concat(h, skips.pop()), temb);  i > 0: h = up.i.up(h)
//   phi = conv_out(SiLU(norm_out(h)))
// Backward runs the same list in reverse. A skip tensor feeds two consumers (the next encoder
// layer and a decoder concat), so its gradient is the sum of both: the decoder's share is
// left in that concat's d_second buffer and the encoder's share is added into it in place.
// Every res block adds its share of dL/dtemb into one [N, 4c] matrix that feeds the
// time-embedding MLP's backward once.
//
// Parameters live in one parameter_store under the spec's checkpoint names, registered in
// the order of PyTorch's state_dict() for tests/refunet/refunet_torch.py; store() exposes it
// to the checkpoint code. Workspaces belong to the layers and grow only when a shape
// changes, so repeated calls at one shape allocate nothing. The layers live behind one
// heap pointer, so a moved refunet keeps every internal pointer valid. A batch is split over
// min(N, 4) replicas of the layers, spread over the threads (see refunet below).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "softdiff/concepts.hpp"
#include "softdiff/nn/attn_block.hpp"
#include "softdiff/nn/concat.hpp"
#include "softdiff/nn/conv2d.hpp"
#include "softdiff/nn/group_norm.hpp"
#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/parameter_store.hpp"
#include "softdiff/nn/refunet_config.hpp"
#include "softdiff/nn/res_block.hpp"
#include "softdiff/nn/time_embedding.hpp"
#include "softdiff/nn/upsample.hpp"
#include "softdiff/random.hpp"
#include "softdiff/tensor.hpp"

namespace softdiff::nn {

/// The Philox stream that refunet::init(seed) draws from; parameter i of the flat layout takes
/// deviate i of it, so initialisation does not depend on threads or on the layer order.
inline constexpr std::uint64_t refunet_init_stream = stream_for(stream_purpose::user, 0x5245'4655);

namespace detail {

template <class T>
struct refunet_down_level {
  std::vector<res_block<T>> res;
  bool has_down = false;
  conv2d<T> down;  // Conv3x3 stride 2 (checkpoint name down.i.down.conv)
};

template <class T>
struct refunet_up_level {
  std::vector<concat_channels<T>> cat;  // one per res block: concat(h, skip)
  std::vector<res_block<T>> res;
  bool has_up = false;
  upsample_nearest2x<T> upsample;
  conv2d<T> up;  // Conv3x3 after the nearest-neighbour x2 (up.i.up.conv)
};

/// Everything a refunet owns, behind one pointer so that its address never changes.
template <class T>
struct refunet_state {
  refunet_config config;
  parameter_store<T> store;
  time_embedding<T> temb;
  conv2d<T> conv_in;
  std::vector<refunet_down_level<T>> down;
  res_block<T> mid0, mid1;
  attn_block<T> attn;
  std::vector<refunet_up_level<T>> up;
  group_norm<T> norm_out;
  conv2d<T> conv_out;

  batch<T> input;                               // this state's samples of the last forward's x
  batch<T> dphi_part;                           // its samples of dphi (when the batch is split)
  matrix<T> dtemb;                              // [N, 4c], dL/dtemb summed over all res blocks
  std::vector<const batch<T>*> skips;           // forward's skip stack
  std::vector<batch<T>*> skip_grads;            // per skip: the concat buffer holding its gradient

  explicit refunet_state(refunet_config cfg) : config(std::move(cfg)) {
    config.validate();
    const refunet_config& c = config;
    const std::size_t base = c.base_channels, L = c.levels(), B = c.num_res_blocks, G = c.groups;
    const std::size_t tch = 4 * base;
    const double eps = c.norm_eps;
    temb = time_embedding<T>(base);
    conv_in = conv2d<T>(c.in_channels, base, 3);
    std::vector<std::size_t> skip_ch{base};
    std::size_t ch = base;
    down.resize(L);
    for (std::size_t i = 0; i < L; ++i) {
      for (std::size_t j = 0; j < B; ++j) {
        down[i].res.emplace_back(ch, c.channels_at(i), tch, G, eps);
        ch = c.channels_at(i);
        skip_ch.push_back(ch);
      }
      if (i + 1 != L) {
        down[i].has_down = true;
        down[i].down = conv2d<T>(ch, ch, 3, 2, 1);
        skip_ch.push_back(ch);
      }
    }
    mid0 = res_block<T>(ch, ch, tch, G, eps);
    mid1 = res_block<T>(ch, ch, tch, G, eps);
    if (c.attn_at_lowest) attn = attn_block<T>(ch, G, eps);
    up.resize(L);
    for (std::size_t ii = L; ii-- > 0;) {
      up[ii].cat.resize(B + 1);
      for (std::size_t j = 0; j <= B; ++j) {
        up[ii].res.emplace_back(ch + skip_ch.back(), c.channels_at(ii), tch, G, eps);
        skip_ch.pop_back();
        ch = c.channels_at(ii);
      }
      if (ii != 0) {
        up[ii].has_up = true;
        up[ii].up = conv2d<T>(ch, ch, 3);
      }
    }
    norm_out = group_norm<T>(G, base, eps);
    conv_out = conv2d<T>(base, c.in_channels, 3);
    declare_all();
    store.allocate();
    bind_all();
    skip_grads.assign(skip_count(), nullptr);
    skips.reserve(skip_count());
  }

  [[nodiscard]] std::size_t skip_count() const {
    return 1 + config.levels() * config.num_res_blocks + (config.levels() - 1);
  }

  /// Registers every tensor in the order of PyTorch's state_dict().
  void declare_all() {
    temb.declare(store, "temb");
    conv_in.declare(store, "conv_in");
    for (std::size_t i = 0; i < down.size(); ++i) {
      const std::string p = "down." + std::to_string(i);
      for (std::size_t j = 0; j < down[i].res.size(); ++j) down[i].res[j].declare(store, p + ".res." + std::to_string(j));
      if (down[i].has_down) down[i].down.declare(store, p + ".down.conv");
    }
    mid0.declare(store, "mid.res.0");
    mid1.declare(store, "mid.res.1");
    if (config.attn_at_lowest) attn.declare(store, "mid.attn");
    for (std::size_t i = 0; i < up.size(); ++i) {
      const std::string p = "up." + std::to_string(i);
      for (std::size_t j = 0; j < up[i].res.size(); ++j) up[i].res[j].declare(store, p + ".res." + std::to_string(j));
      if (up[i].has_up) up[i].up.declare(store, p + ".up.conv");
    }
    norm_out.declare(store, "norm_out");
    conv_out.declare(store, "conv_out");
  }

  template <class F>
  void for_each_module(F&& f) {
    f(temb), f(conv_in);
    for (auto& level : down) {
      for (auto& r : level.res) f(r);
      if (level.has_down) f(level.down);
    }
    f(mid0), f(mid1);
    if (config.attn_at_lowest) f(attn);
    for (auto& level : up) {
      for (auto& r : level.res) f(r);
      if (level.has_up) f(level.up);
    }
    f(norm_out), f(conv_out);
  }

  void bind_all() {
    for_each_module([&](auto& m) { m.bind(store); });
  }

  /// PyTorch's default initialisation: Conv2d and Linear weight and bias ~ U(+-1/sqrt(fan_in))
  /// (kaiming_uniform_ with a = sqrt(5)), GroupNorm weight 1 and bias 0.
  void init(std::uint64_t seed) {
    const noise_source noise{seed, refunet_init_stream};
    for_each_module([&](auto& m) { m.init(noise); });
    store.zero_grad();
  }

  // Messages are built only on failure (an eager to_string would allocate on every call).
  void check_input(const batch<T>& x, std::span<const double> t, const char* where) const {
    using ::softdiff::detail::concat;
    const shape4 s = shape_of(x);
    if (s[0] == 0) throw error(concat(where, ": empty batch ", to_string(s)));
    if (s[1] != config.in_channels)
      throw error(concat(where, ": input ", to_string(s), " has ", s[1],
                         " channels, the network was built for in_channels = ", config.in_channels));
    config.check_image_size(s[2], s[3], where);
    if (t.size() != s[0])
      throw error(concat(where, ": ", t.size(), " times t for a batch of ", s[0], " images (one t per image)"));
    for (std::size_t n = 0; n < t.size(); ++n)
      if (!std::isfinite(t[n])) throw error(concat(where, ": non-finite t ", t[n], " for image ", n));
    check_finite(x, where);
  }

  /// Copies samples [n0, n1) of x (already checked) into `input`.
  void take_input(const batch<T>& x, std::size_t n0, std::size_t n1) {
    const shape4 s = shape_of(x);
    ensure_shape(input, shape4{n1 - n0, s[1], s[2], s[3]});
    const std::size_t per = s[1] * s[2] * s[3];
    std::copy(x.data() + n0 * per, x.data() + n1 * per, input.data());
  }

  /// Runs the network on `input` with times t (one per sample of input); returns conv_out.y.
  /// f(conv) for every convolution of this replica.
  template <class F>
  void for_each_conv(F f) {
    f(conv_in), f(conv_out);
    const auto blocks = [&](std::vector<res_block<T>>& v) {
      for (auto& b : v) f(b.conv1), f(b.conv2), f(b.skip);
    };
    for (auto& level : down) blocks(level.res), f(level.down);
    for (auto& level : up) blocks(level.res), f(level.up);
    f(mid0.conv1), f(mid0.conv2), f(mid0.skip), f(mid1.conv1), f(mid1.conv2), f(mid1.skip);
  }

  const batch<T>& run_forward(std::span<const double> t) {
    const matrix<T>& te = temb.forward(t);
    const batch<T>* h = &conv_in.forward(input);
    skips.clear();
    skips.push_back(h);
    for (auto& level : down) {
      for (auto& r : level.res) skips.push_back(h = &r.forward(*h, te));
      if (level.has_down) skips.push_back(h = &level.down.forward(*h));
    }
    h = &mid0.forward(*h, te);
    if (config.attn_at_lowest) h = &attn.forward(*h);
    h = &mid1.forward(*h, te);
    for (std::size_t i = up.size(); i-- > 0;) {
      auto& level = up[i];
      for (std::size_t j = 0; j < level.res.size(); ++j) {
        const batch<T>& c = level.cat[j].forward(*h, *skips.back());
        skips.pop_back();
        h = &level.res[j].forward(c, te);
      }
      if (level.has_up) h = &level.up.forward(level.upsample.forward(*h));
    }
    return conv_out.forward(*h, norm_out.silu_map(*h));
  }

  /// y += x, element-wise over whole batches of one shape.
  static void add_into(batch<T>& y, const batch<T>& x) {
    T* yp = y.data();
    const T* xp = x.data();
    const auto n = static_cast<std::ptrdiff_t>(y.size());
#pragma omp parallel for simd schedule(static) num_threads(layer_threads()) if (n > 32768)
    for (std::ptrdiff_t i = 0; i < n; ++i) yp[i] += xp[i];
  }

  /// Backward for samples [n0, n1) of dphi (the samples this state ran forward on).
  void run_backward(const batch<T>& dphi_all, std::size_t n0, std::size_t n1, bool need_input_grad) {
    const batch<T>* dp = &dphi_all;
    if (n1 - n0 != dphi_all.shape()[0]) {
      const shape4 s = shape_of(dphi_all);
      ensure_shape(dphi_part, shape4{n1 - n0, s[1], s[2], s[3]});
      const std::size_t per = s[1] * s[2] * s[3];
      std::copy(dphi_all.data() + n0 * per, dphi_all.data() + n1 * per, dphi_part.data());
      dp = &dphi_part;
    }
    const batch<T>& dphi = *dp;
    const std::size_t N = dphi.shape()[0];
    ensure_shape(dtemb, std::array<std::size_t, 2>{N, temb.channels()});
    std::fill(dtemb.begin(), dtemb.end(), T(0));
    const batch<T>* g = &norm_out.backward_silu(conv_out.backward(dphi));
    // decoder, in reverse: the k-th concat met here popped skip k in the forward pass
    std::size_t k = 0;
    for (auto& level : up) {
      if (level.has_up) g = &level.upsample.backward(level.up.backward(*g));
      for (std::size_t j = level.res.size(); j-- > 0;) {
        const concat_grads<T> cg = level.cat[j].backward(level.res[j].backward(*g, dtemb));
        g = &cg.first;
        skip_grads[k++] = &level.cat[j].d_second;
      }
    }
    g = &mid1.backward(*g, dtemb);
    if (config.attn_at_lowest) g = &attn.backward(*g);
    g = &mid0.backward(*g, dtemb);
    // encoder, in reverse: each output's gradient is its decoder share plus the next layer's dx
    std::size_t s = skip_count();
    for (std::size_t i = down.size(); i-- > 0;) {
      auto& level = down[i];
      if (level.has_down) {
        batch<T>& d = *skip_grads[--s];
        add_into(d, *g);
        g = &level.down.backward(d);
      }
      for (std::size_t j = level.res.size(); j-- > 0;) {
        batch<T>& d = *skip_grads[--s];
        add_into(d, *g);
        g = &level.res[j].backward(d, dtemb);
      }
    }
    batch<T>& d0 = *skip_grads[--s];
    add_into(d0, *g);
    conv_in.backward(d0, need_input_grad);
    temb.backward(dtemb);
  }
};

}  // namespace detail

/// RefUNet (docs/refunet.md) for scalar type T (float; double for gradient checks).
///
/// Threads: a batch of N >= 2 samples is split into R = min(N, k) contiguous slices, k = 4 by
/// default (set_max_replicas), one per replica of the layers (replica 0 owns the parameters;
/// the others copy them before each forward). The replicas are spread over the OpenMP threads,
/// each running its slice through the whole network on one thread, so a pass has one parallel
/// region instead of one per layer (no per-layer barriers, each thread's activations stay in
/// its own cache); the replicas' parameter gradients are summed in replica order into
/// gradients() at the end of backward. R is configuration and never depends on the thread
/// count, so the summation order of the gradients, and the gradients bit for bit, do not
/// either. k = 4 keeps 1, 2 or 4 threads busy (each replica costs a copy of the parameters and
/// gradients: at 2 threads 8 replicas train 5% slower than 4); more threads want a larger k.
/// Every layer computes each sample on its own (GroupNorm, attention and the time embedding
/// are per sample), so outputs do not depend on the split. With one replica the layers
/// parallelise internally instead.
template <class T = float>
class refunet {
public:
  using scalar_type = T;

  /// Builds the network for `config` (validated; throws softdiff::error naming a bad field) and
  /// initialises it from `seed` (see init).
  explicit refunet(refunet_config config = {}, std::uint64_t seed = 0) {
    r_.push_back(std::make_unique<detail::refunet_state<T>>(std::move(config)));
    r_[0]->init(seed);
  }

  /// A copy owns new buffers with the same configuration, parameters and gradients (thawed:
  /// freeze is not copied).
  refunet(const refunet& other)
      : max_replicas_(other.max_replicas_), precision_(other.precision_), engine_(other.engine_),
        conv_algorithm_(other.conv_algorithm_) {
    r_.push_back(std::make_unique<detail::refunet_state<T>>(other.config()));
    apply_precision(*r_[0]);
    std::ranges::copy(other.parameters(), r_[0]->store.parameters().begin());
    std::ranges::copy(other.gradients(), r_[0]->store.gradients().begin());
  }
  refunet& operator=(const refunet& other) {
    if (this != &other) *this = refunet(other);
    return *this;
  }
  refunet(refunet&&) noexcept = default;
  refunet& operator=(refunet&&) noexcept = default;
  ~refunet() = default;

  /// Re-initialises every parameter as PyTorch does by default (Conv2d, Linear: weight and
  /// bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); GroupNorm: weight 1, bias 0) from Philox
  /// stream refunet_init_stream of `seed`, and zeroes the gradients. Same seed, same values,
  /// for any thread count.
  void init(std::uint64_t seed) {
    (void)thawed_store("init");
    r_[0]->init(seed);
  }

  /// Inference with fixed parameters (sampling, evaluation): freeze(true) copies the parameters
  /// to every replica once and lets the layers keep what they derive from them (the bf16 packing
  /// of the weights), instead of redoing both at every call (at batches of 16, 8% of a call).
  /// While frozen the parameters cannot change: init and the mutable parameters() and store()
  /// throw. freeze(false) thaws; outputs are the same bits either way.
  void freeze(bool on) {
    frozen_ = on;
    for (std::size_t r = 0; r < r_.size(); ++r) {
      if (on && r > 0) std::ranges::copy(std::as_const(r_[0]->store).parameters(), r_[r]->store.parameters().begin());
      r_[r]->for_each_conv([&](conv2d<T>& c) { c.freeze_weights(on); });
    }
  }
  [[nodiscard]] bool frozen() const { return frozen_; }

  /// phi = RefUNet(x, t): x [N, in_channels, H, W] with H, W multiples of 2^(levels - 1),
  /// one finite t per image. phi may be x itself. Thawed, this is forward (a backward after it
  /// differentiates this call). Frozen (inference), each replica runs its share of the batch
  /// in micro-batches of at most inference_microbatch samples (where micro_batches_pay), so
  /// that one micro-batch's activations stay in the core's cache from one layer to the next
  /// instead of a whole share's going through memory at every layer; the layers' buffers then
  /// hold one micro-batch. The outputs are the same bits (every layer is per sample); no
  /// backward may follow a frozen predict.
  void predict(const batch<T>& x, std::span<const double> t, batch<T>& phi) {
    if (!frozen_) return forward(x, t, phi);
    r_[0]->check_input(x, t, "refunet::predict");
    plan(x.shape()[0]);
    ensure_shape(phi, shape_of(x));
    const std::size_t per = x.shape()[1] * x.shape()[2] * x.shape()[3];
    const std::size_t m = micro_batches_pay() ? inference_microbatch : x.shape()[0];
    run_replicas([&](std::size_t r) {
      detail::refunet_state<T>& s = *r_[r];
      for (std::size_t a = split_[r]; a < split_[r + 1]; a += m) {
        const std::size_t b = std::min(split_[r + 1], a + m);
        s.take_input(x, a, b);  // before phi's rows [a, b) are written: phi may be x
        const batch<T>& out = s.run_forward(t.subspan(a, b - a));
        std::copy(out.data(), out.data() + out.size(), phi.data() + a * per);
      }
    });
    out_shape_ = shape_of(phi);
    forwarded_ = false;  // the layers hold the last micro-batch only
    has_input_grad_ = false;
  }
  /// Samples per micro-batch of a frozen predict: at 28 x 28 and base 16 a sample's largest
  /// activation is about 150 KB, so a few fit a 2 MB L2 with the layer's output (fewer mean
  /// more fixed cost per layer call; docs/performance.md, session 18).
  static constexpr std::size_t inference_microbatch = 4;
  /// Whether a frozen predict runs micro-batches: not when a convolution runs Winograd's
  /// F(2 x 2, 3 x 3), whose GEMMs gather the tiles of several samples
  /// (winograd_shape::target_cols) and which micro-batches would cut short (the default
  /// RefUNet's 64-channel levels in float32: its frozen forward at batch 64 took 161-172 ms in
  /// micro-batches of 4 against 143-152 in whole shares). F(4 x 4, 3 x 3) runs on images of 20 x
  /// 20 or more by default (winograd_tiling), 25 tiles or more a sample, so a micro-batch fills
  /// its GEMMs (the main recipe's 28 x 28 upsampling convolution: its sampling was 15-40%
  /// slower in whole shares).
  [[nodiscard]] bool micro_batches_pay() {
    bool winograd = false;
    r_[0]->for_each_conv([&](conv2d<T>& c) {
      winograd = winograd || (c.runs_winograd() && c.resolved_algorithm() == conv_algorithm::winograd);
    });
    return !winograd;
  }

  /// As predict, keeping what backward needs (x is copied, so it may change or die afterwards).
  void forward(const batch<T>& x, std::span<const double> t, batch<T>& phi) {
    r_[0]->check_input(x, t, "refunet::forward");
    plan(x.shape()[0]);
    const std::size_t R = active_;
    for (std::size_t r = 0; r < R; ++r) r_[r]->take_input(x, split_[r], split_[r + 1]);
    share_winograd_transforms();
    if (R == 1) {
      r_[0]->run_forward(t);
    } else {
      std::span<const T> values = r_[0]->store.parameters();
      run_replicas([&](std::size_t r) {
        if (r > 0 && !frozen_) std::ranges::copy(values, r_[r]->store.parameters().begin());
        r_[r]->run_forward(t.subspan(split_[r], split_[r + 1] - split_[r]));
      });
    }
    ensure_shape(phi, shape_of(x));
    const std::size_t per = x.shape()[1] * x.shape()[2] * x.shape()[3];
    for (std::size_t r = 0; r < R; ++r) {
      const batch<T>& out = r_[r]->conv_out.y;
      std::copy(out.data(), out.data() + out.size(), phi.data() + split_[r] * per);
    }
    out_shape_ = shape_of(phi);
    forwarded_ = true;
    has_input_grad_ = false;
  }

  /// Adds dL/dtheta for the upstream gradient dphi = dL/dphi of the last forward into
  /// gradients(). With need_input_grad, dL/dx is kept too (input_gradient()).
  void backward(const batch<T>& dphi, bool need_input_grad = false) {
    using ::softdiff::detail::concat;
    if (!forwarded_) throw error("refunet::backward: called before forward (a frozen predict keeps no activations)");
    if (shape_of(dphi) != out_shape_)
      throw error(concat("refunet::backward: dphi ", to_string(shape_of(dphi)),
                         " does not match the last forward's output ", to_string(out_shape_)));
    check_finite(dphi, "refunet::backward: dphi");
    const std::size_t R = active_;
    if (R == 1) {
      r_[0]->run_backward(dphi, 0, out_shape_[0], need_input_grad);
    } else {
      run_replicas([&](std::size_t r) {
        if (r > 0) r_[r]->store.zero_grad();
        r_[r]->run_backward(dphi, split_[r], split_[r + 1], need_input_grad);
      });
      // gradients() += the other replicas' gradients, in replica order (unless the caller adds them)
      for (std::size_t r = 0; r < R; ++r) grads_[r] = r_[r]->store.gradients().data();
      if (sum_replicas_) detail::sum_in_order<T>(std::span<T* const>(grads_), grads_[0], parameter_count(), team());
      if (need_input_grad) {
        ensure_shape(input_grad_, out_shape_);
        const std::size_t per = out_shape_[1] * out_shape_[2] * out_shape_[3];
        for (std::size_t r = 0; r < R; ++r)
          std::ranges::copy(std::span<const T>(r_[r]->conv_in.dx.data(), r_[r]->conv_in.dx.size()),
                            input_grad_.data() + split_[r] * per);
      }
    }
    has_input_grad_ = need_input_grad;
  }

  /// Data-parallel training (train/trainer.hpp): with `on` false, backward leaves each replica's
  /// parameter gradients in its own buffer (replica_gradients) instead of adding them into
  /// gradients(), so that replicas computed by several processes can be added in one order
  /// (detail::sum_in_order), the order a single process uses.
  void set_sum_replicas(bool on) { sum_replicas_ = on; }
  /// The parameter gradients of replica r (< replicas_in_use()) after the last backward; replica
  /// 0's are gradients().
  [[nodiscard]] std::span<const T> replica_gradients(std::size_t r) const {
    ::softdiff::detail::require(r < active_, "refunet::replica_gradients: replica ", r, " of ", active_);
    return std::as_const(r_[r]->store).gradients();
  }

  /// dL/dx of the last backward(dphi, true).
  [[nodiscard]] const batch<T>& input_gradient() const {
    if (!has_input_grad_) throw error("refunet::input_gradient: call backward(dphi, true) first");
    return active_ == 1 ? r_[0]->conv_in.dx : input_grad_;
  }

  void zero_grad() { r_[0]->store.zero_grad(); }
  [[nodiscard]] std::size_t parameter_count() const { return r_[0]->store.size(); }
  [[nodiscard]] std::span<T> parameters() { return thawed_store("parameters").parameters(); }
  [[nodiscard]] std::span<const T> parameters() const { return std::as_const(r_[0]->store).parameters(); }
  [[nodiscard]] std::span<T> gradients() { return r_[0]->store.gradients(); }
  [[nodiscard]] std::span<const T> gradients() const { return std::as_const(r_[0]->store).gradients(); }

  /// Named views (spec checkpoint names, PyTorch shapes, offsets into parameters()).
  [[nodiscard]] parameter_store<T>& store() { return thawed_store("store"); }
  [[nodiscard]] const parameter_store<T>& store() const { return r_[0]->store; }
  [[nodiscard]] const refunet_config& config() const { return r_[0]->config; }

  /// Splits a batch of N over min(N, k) replicas (k = 0: default_replicas, 4; never the thread
  /// count, so that gradients do not depend on it; a multiple of the thread count keeps every
  /// thread busy); 1 keeps one set of layers that parallelise internally. Gradients are bitwise
  /// reproducible for a given k on any thread count. Takes effect at the next forward.
  void set_max_replicas(std::size_t k) { max_replicas_ = k; }
  static constexpr std::size_t default_replicas = 4;
  /// The k of set_max_replicas (default_replicas when unset).
  [[nodiscard]] std::size_t max_replicas() const { return max_replicas_ > 0 ? max_replicas_ : default_replicas; }
  /// Replicas the last forward used.
  [[nodiscard]] std::size_t replicas_in_use() const { return active_; }

  /// The arithmetic of the 3 x 3 and 1 x 1 convolutions (precision.hpp): float32 (the default), or bf16
  /// on `engine`, forward and backward (training keeps float32 weights, gradients and
  /// optimiser); layers bf16 does not apply to (fewer than 16 or not a multiple of 16 channels,
  /// strided, 1 x 1) stay float32. bf16 on AMX throws here, naming the missing CPU feature,
  /// where it cannot run.
  void set_precision(precision p, bf16_engine e = bf16_engine::amx) {
    if (p == precision::bf16) require_bf16_engine(e);
    precision_ = p, engine_ = e;
    for (auto& r : r_) apply_precision(*r);
  }
  [[nodiscard]] precision arithmetic() const { return precision_; }
  /// The algorithm of every convolution (conv2d.hpp; automatic by default), e.g. to compare
  /// Winograd with the direct kernel on the whole network (bench_network).
  void set_conv_algorithm(conv_algorithm a) {
    conv_algorithm_ = a;
    for (auto& r : r_) apply_precision(*r);
  }

  /// Replica 0's layers, for tests and benchmarks that look inside (e.g. buffer addresses).
  [[nodiscard]] const detail::refunet_state<T>& internals() const { return *r_[0]; }

private:
  /// Replica 0's store for a caller that may change the parameters: refused while frozen.
  parameter_store<T>& thawed_store(const char* what) {
    detail::require(!frozen_, "refunet::", what, ": the parameters are frozen (freeze(false) first)");
    return r_[0]->store;
  }

  /// Chooses the replicas and their sample ranges for a batch of n (builds missing replicas).
  void plan(std::size_t n) {
    const std::size_t R = std::max<std::size_t>(1, std::min(n, max_replicas_ > 0 ? max_replicas_ : default_replicas));
    while (r_.size() < R) {
      r_.push_back(std::make_unique<detail::refunet_state<T>>(config()));
      apply_precision(*r_.back());
      if (frozen_) {
        std::ranges::copy(std::as_const(r_[0]->store).parameters(), r_.back()->store.parameters().begin());
        r_.back()->for_each_conv([](conv2d<T>& c) { c.freeze_weights(true); });
      }
    }
    split_.resize(R + 1);
    grads_.resize(R);
    for (std::size_t r = 0; r <= R; ++r) split_[r] = detail::segment_begin(n, R, r);
    active_ = R;
  }

  void apply_precision(detail::refunet_state<T>& state) const {
    state.for_each_conv([&](conv2d<T>& c) { c.arithmetic = precision_, c.engine = engine_, c.algorithm = conv_algorithm_; });
  }

  /// Threads that run the active replicas.
  [[nodiscard]] int team() const {
    return static_cast<int>(std::min<std::size_t>(active_, static_cast<std::size_t>(detail::layer_threads())));
  }

  /// f(r) for every active replica r, one per thread; the first exception is rethrown.
  template <class F>
  void run_replicas(F&& f) {
    on_team(active_, std::forward<F>(f));
  }
  /// f(i) for i in [0, n) over the team's threads, in static blocks; the first exception is rethrown.
  template <class F>
  void on_team(std::size_t n, F&& f) {
    std::exception_ptr failure;
    const auto count = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static) num_threads(team())
    for (std::ptrdiff_t i = 0; i < count; ++i) {
      try {
        f(static_cast<std::size_t>(i));
      } catch (...) {
#pragma omp critical(softdiff_refunet_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
  }

  /// Winograd's kernel transforms of this step's weights, computed once by replica 0's layers
  /// (over the team) and read by every active replica's (conv2d::prepare_winograd), instead of
  /// by each replica in its forward and backward: measured 2.5% of a default training step at 4
  /// replicas. The other replicas' weights are replica 0's copied, so the transforms are the
  /// ones they would compute. Inactive replicas drop any they were given.
  void share_winograd_transforms() {
    owners_.clear();
    r_[0]->for_each_conv([&](conv2d<T>& c) { owners_.push_back(&c); });
    on_team(owners_.size(), [&](std::size_t i) { owners_[i]->prepare_winograd(); });
    for (std::size_t r = 1; r < r_.size(); ++r) {
      std::size_t i = 0;
      r_[r]->for_each_conv([&](conv2d<T>& c) { c.share_winograd(r < active_ ? owners_[i++] : nullptr); });
    }
  }

  std::vector<std::unique_ptr<detail::refunet_state<T>>> r_;  // r_[0] owns the parameters
  std::vector<std::size_t> split_;                            // replica r: samples [split_[r], split_[r + 1])
  std::vector<conv2d<T>*> owners_;                            // replica 0's convolutions (share_winograd_transforms)
  std::vector<T*> grads_;                                     // the replicas' gradient buffers
  std::size_t active_ = 1, max_replicas_ = 0;
  bool sum_replicas_ = true;
  bool frozen_ = false;  // freeze
  precision precision_ = precision::float32;
  bf16_engine engine_ = bf16_engine::amx;
  conv_algorithm conv_algorithm_ = conv_algorithm::automatic;
  shape4 out_shape_{};
  batch<T> input_grad_;  // dL/dx gathered from the replicas
  bool forwarded_ = false, has_input_grad_ = false;
};

static_assert(TrainableDenoiser<refunet<float>>);
static_assert(TrainableDenoiser<refunet<double>>);
static_assert(ReplicatedDenoiser<refunet<float>>);
static_assert(ReplicatedDenoiser<refunet<double>>);

}  // namespace softdiff::nn
