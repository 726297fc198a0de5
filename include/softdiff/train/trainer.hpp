#pragma once
// Training a SoftDiffusion model with the Soft Score Matching loss (eq. 12),
//   L = E_t w(t) E || C_t ( phi_theta(x_t, t) - r_t ) ||^2,   r_t = x_0 - x_t,  w(t) = 1 or 1 / sigma_t^2,
// (trainer_config::loss selects the ablation baselines instead: the clean-image loss or eq. 7,
// loss/kind.hpp; the gradient below is then that loss's),
// one step = minibatch x_0 (a per-epoch Philox permutation), stratified times t_i,
// x_t = C_t x_0 + sigma_t eta, dL/dphi = 2 w(t) C_t^T C_t (phi - r_t) (SoftDiffusion::loss),
// net.backward(dL/dphi), Adam with linear warm-up and gradient-norm clipping (nn/adam.hpp),
// then the exponential moving average of the weights (nn/ema.hpp) that sampling uses.
//
// Every random draw of step k is a pure function of (seed, k) (train/minibatch.hpp), so the
// state of a run is: weights, Adam moments, EMA, and the step counter. save_checkpoint writes
// all of it into one safetensors file (nn/checkpoint.hpp) and load_checkpoint restores it:
// k steps, save, load, N - k steps give the same bits as N steps in one go.
//
// A step that meets a non-finite value (data, network output, loss or gradient) throws
// train::step_error naming the step, and changes neither weights, moments, EMA nor the
// counter: the last checkpoint written stays the last good state.
//
// Data-parallel (docs/distributed.md): with a Communicator of P > 1 processes, every process
// draws the same global batch, the batch's R = min(B, net.max_replicas()) replicas (RefUNet's
// equal shards) are dealt out in contiguous blocks, replicas [R p / P, R (p + 1) / P) to rank p,
// and each process runs the loss (normalised by the whole batch) and backward on its replicas
// only. The replicas' gradients are added in replica order, as one process adds them (an exact
// reduce-scatter by parameter slices, then an all-gather), so the weights, Adam moments and EMA
// are bitwise those of a single process for any P <= R. Every process then takes the same Adam
// step. Needs B divisible by R.
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "softdiff/backend/communicator.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/data/json.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/error.hpp"
#include "softdiff/loss/kind.hpp"
#include "softdiff/loss/soft_score_matching.hpp"
#include "softdiff/nn/adam.hpp"
#include "softdiff/nn/checkpoint.hpp"
#include "softdiff/nn/ema.hpp"
#include "softdiff/nn/layer_support.hpp"
#include "softdiff/nn/parameter_store.hpp"
#include "softdiff/nn/precision.hpp"
#include "softdiff/random.hpp"
#include "softdiff/soft_diffusion.hpp"
#include "softdiff/tensor.hpp"
#include "softdiff/train/minibatch.hpp"

namespace softdiff::train {

/// A TrainableDenoiser whose parameters are registered by name in a parameter_store
/// (the layout the checkpoint uses).
template <class N>
concept NamedTrainableDenoiser = TrainableDenoiser<N> && requires(const N& n) {
  { n.store() } -> std::convertible_to<const nn::parameter_store<typename N::scalar_type>&>;
};

/// What a training run is, apart from the model and the data.
struct trainer_config {
  std::uint64_t seed = 0;
  std::size_t batch_size = 64;
  double t_min = 1e-3;  // times are drawn from [t_min, 1): sigma_0 = 0 makes t = 0 useless (minibatch.hpp)
  loss::weighting weighting = loss::weighting::unit;
  loss::loss_kind loss = loss::loss_kind::ssm;  // the objective; checkpoints without "loss" were ssm
  nn::adam_config adam{};     // lr 2e-4, betas 0.9 / 0.999, eps 1e-8, warm-up 5000, clipping at 1
  double ema_decay = 0.9999;  // ema <- decay ema + (1 - decay) weights after every step
  // arithmetic of the network's 3 x 3 and 1 x 1 convolutions, forward and backward (nn/precision.hpp); the
  // weights, gradients, optimiser and EMA are float32 either way
  nn::precision arithmetic = nn::precision::float32;
};

/// "unit" (w = 1) or "inverse-variance" (w = 1 / sigma_t^2, the paper's appendix D).
[[nodiscard]] inline std::string weighting_name(loss::weighting w) {
  return w == loss::weighting::unit ? "unit" : "inverse-variance";
}

/// "unit" or "inverse-variance"; also the older spelling "inverse-sigma2" ("inverse_sigma2"),
/// which checkpoints written before the rename carry.
[[nodiscard]] inline loss::weighting weighting_from_name(std::string_view s) {
  if (s == "unit") return loss::weighting::unit;
  if (s == "inverse-variance" || s == "inverse-sigma2" || s == "inverse_sigma2") return loss::weighting::inverse_sigma2;
  throw error(softdiff::detail::concat("unknown loss weighting '", s, "' (known: unit, inverse-variance)"));
}

/// The configuration as JSON (the "softdiff" metadata of a checkpoint holds these fields).
[[nodiscard]] inline nlohmann::json to_json(const trainer_config& c) {
  return {{"seed", c.seed},
          {"batch_size", c.batch_size},
          {"t_min", c.t_min},
          {"weighting", weighting_name(c.weighting)},
          {"loss", loss::loss_kind_name(c.loss)},
          {"ema_decay", c.ema_decay},
          {"precision", nn::precision_name(c.arithmetic)},
          {"adam",
           {{"lr", c.adam.lr},
            {"beta1", c.adam.beta1},
            {"beta2", c.adam.beta2},
            {"eps", c.adam.eps},
            {"warmup_steps", c.adam.warmup_steps},
            {"max_grad_norm", c.adam.max_grad_norm}}}};
}

/// Reads the fields to_json writes; throws naming the missing or mistyped field.
[[nodiscard]] inline trainer_config trainer_config_from_json(const nlohmann::json& j, const std::string& where) {
  const auto member = [&](const nlohmann::json& o, const char* key) -> const nlohmann::json& {
    return data::json_member(o, key, where);
  };
  const auto integer = [&]<class I>(const nlohmann::json& o, const char* key, I) {
    return data::json_integer<I>(member(o, key), softdiff::detail::concat(where, ": \"", key, "\""));
  };
  const auto number = [&](const nlohmann::json& o, const char* key) {
    return data::json_number(member(o, key), softdiff::detail::concat(where, ": \"", key, "\""));
  };
  try {
    trainer_config c;
    c.seed = integer(j, "seed", std::uint64_t{});
    c.batch_size = integer(j, "batch_size", std::size_t{});
    c.t_min = number(j, "t_min");
    c.weighting = weighting_from_name(member(j, "weighting").get<std::string>());
    c.loss = loss::loss_kind_from_name(j.value("loss", std::string("ssm")));  // absent: written before the ablation
    c.ema_decay = number(j, "ema_decay");
    c.arithmetic = nn::parse_precision(j.value("precision", std::string("float32")));  // absent: float32
    const nlohmann::json& a = member(j, "adam");
    c.adam.lr = number(a, "lr");
    c.adam.beta1 = number(a, "beta1");
    c.adam.beta2 = number(a, "beta2");
    c.adam.eps = number(a, "eps");
    c.adam.warmup_steps = integer(a, "warmup_steps", std::int64_t{});
    c.adam.max_grad_norm = number(a, "max_grad_norm");
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw error(softdiff::detail::concat(where, ": ", data::json_message(e)));
  }
}

/// A training step that failed (non-finite data, output, loss or gradient); names the step.
class step_error : public error {
public:
  step_error(std::int64_t step, const std::string& what)
      : error(softdiff::detail::concat("training stopped at step ", step, ": ", what)), step_(step) {}
  /// The 1-based number of the step that failed (the state is that after step() - 1 steps).
  [[nodiscard]] std::int64_t step() const { return step_; }

private:
  std::int64_t step_;
};

/// What one step reports.
struct step_result {
  std::int64_t step = 0;       ///< steps completed, this one included
  double loss = 0.0;           ///< eq. 12 on the batch, weighted (the differentiated value)
  double unweighted = 0.0;     ///< the same with w = 1
  double grad_norm = 0.0;      ///< before clipping
  double learning_rate = 0.0;  ///< after warm-up
};

template <CorruptionOperator Op, Schedule Sched, NamedTrainableDenoiser Net,
          backend::Communicator Comm = backend::single_process>
  requires std::same_as<typename Op::scalar_type, typename Net::scalar_type>
class trainer {
public:
  using T = typename Net::scalar_type;
  using model_type = SoftDiffusion<Op, Sched, Net>;

  /// `data`: the training images [M, C, H, W] (finite, checked here). The model's final
  /// distribution p_1 is fitted to them unless it already has one. The EMA starts at the
  /// network's current weights. With a communicator of several processes, every process
  /// passes the same model, data and config (see the top of this file).
  trainer(model_type model, batch<T> data, trainer_config config, Comm comm = Comm())
      : model_(std::move(model)), data_(std::move(data)), config_(config), batches_(config.seed), comm_(std::move(comm)) {
    softdiff::detail::require(config_.batch_size > 0, "train::trainer: batch size must be > 0");
    softdiff::detail::require(std::isfinite(config_.t_min) && config_.t_min > 0.0 && config_.t_min < 1.0,
                    "train::trainer: t_min = ", config_.t_min, " must lie in (0, 1) (sigma_0 = 0 at t = 0)");
    softdiff::detail::require(data_.size() > 0, "train::trainer: empty dataset of shape ", to_string(shape_of(data_)));
    detail::require_finite_batch(data_, "train::trainer: training data");
    Net& net = model_.network();
    softdiff::detail::require(net.parameters().size() == net.store().size(), "train::trainer: the network has ",
                    net.parameters().size(), " parameters but its store lays out ", net.store().size());
    if constexpr (requires { net.set_precision(config_.arithmetic); })
      net.set_precision(config_.arithmetic);  // bf16 throws here, naming the missing CPU feature
    else
      softdiff::detail::require(config_.arithmetic == nn::precision::float32, "train::trainer: this network has no ",
                      nn::precision_name(config_.arithmetic), " arithmetic");
    adam_ = nn::adam<T>(net.parameter_count(), config_.adam);
    ema_ = nn::ema<T>(std::span<const T>(net.parameters()), config_.ema_decay);
    if (!model_.final_distribution().has_value()) model_.fit_final_distribution(data_);
    times_.resize(config_.batch_size);
    if (comm_.size() > 1) plan_shards();
  }

  /// One training step (see the top of this file). Throws step_error, with nothing updated,
  /// when the step meets a non-finite value or any other error.
  step_result step() {
    const std::int64_t k = step_;  // 0-based index of this step: its random streams
    step_result r;
    try {
      batches_.gather(data_, static_cast<std::uint64_t>(k), config_.batch_size, x0_);
      stratified_times(config_.seed, static_cast<std::uint64_t>(k), config_.t_min, times_);
      Net& net = model_.network();
      net.zero_grad();
      const noise_source noise{config_.seed, stream_for(stream_purpose::training, static_cast<std::uint64_t>(k))};
      // eq. 12: L = w(t) ||C_t (phi(x_t, t) - r_t)||^2, r_t = x_0 - x_t; grad_phi_ = 2 w(t) C_t^T C_t (phi - r_t)
      // (or the clean-image loss / eq. 7 and its gradient, per config_.loss)
      loss::loss_value v;
      if (comm_.size() == 1) {
        v = model_.loss(x0_, times_, noise, config_.weighting, config_.loss, &grad_phi_);
        softdiff::detail::require(std::isfinite(v.value), "the loss is ", v.value);
        net.backward(grad_phi_);
      } else {
        v = sharded_loss_and_gradients(noise);
      }
      r.grad_norm = adam_.step(net.parameters(), net.gradients());  // throws before updating if not finite
      ema_.update(std::span<const T>(net.parameters()));
      r.loss = v.value;
      r.unweighted = v.unweighted;
      r.learning_rate = adam_.learning_rate(adam_.steps_taken());
    } catch (const step_error&) {
      throw;
    } catch (const std::exception& e) {
      throw step_error(k + 1, e.what());
    }
    r.step = ++step_;
    return r;
  }

  /// Steps completed.
  [[nodiscard]] std::int64_t steps_done() const { return step_; }
  [[nodiscard]] const trainer_config& config() const { return config_; }
  [[nodiscard]] model_type& model() { return model_; }
  [[nodiscard]] const model_type& model() const { return model_; }
  [[nodiscard]] const batch<T>& data() const { return data_; }
  [[nodiscard]] const nn::adam<T>& optimizer() const { return adam_; }
  [[nodiscard]] const nn::ema<T>& average() const { return ema_; }
  /// The times and images (dataset indices) of the last step, for inspection and tests.
  [[nodiscard]] std::span<const double> last_times() const { return times_; }
  [[nodiscard]] std::span<const std::size_t> last_indices() const { return batches_.last_indices(); }

  /// Runs f(model) with the EMA weights in the network (what sampling should use), then puts
  /// the trained weights back bit for bit, also when f throws.
  template <class F>
  decltype(auto) with_ema_weights(F&& f) {
    std::span<T> p = model_.network().parameters();
    saved_.assign(p.begin(), p.end());
    std::copy(ema_.weights().begin(), ema_.weights().end(), p.begin());
    struct restore {
      std::vector<T>& saved;
      std::span<T> p;
      ~restore() { std::copy(saved.begin(), saved.end(), p.begin()); }
    } guard{saved_, p};
    return std::forward<F>(f)(model_);
  }

  /// The "softdiff" metadata: `description` (what the caller knows: operator, schedule, data,
  /// final distribution) with the trainer's fields added: format, step and to_json(config) (which holds "precision").
  [[nodiscard]] nlohmann::json describe(nlohmann::json description = nlohmann::json::object()) const {
    if (description.is_null()) description = nlohmann::json::object();
    softdiff::detail::require(description.is_object(), "train::trainer::describe: the description must be a JSON object, got ",
                    description.type_name());
    description["format"] = "softdiff-checkpoint";
    description["version"] = 1;
    description["step"] = step_;
    const nlohmann::json config = to_json(config_);
    for (const auto& [key, value] : config.items()) description[key] = value;
    return description;
  }

  /// Writes the whole training state to `path` (temporary file, then rename): the EMA weights
  /// under the network's names, train.weights / train.adam_m / train.adam_v, and metadata
  /// "softdiff" = describe(description) plus `extra` entries (e.g. "refunet_config"). Data-parallel,
  /// only rank 0 writes (every rank holds the same state); the others return at once.
  void save_checkpoint(const std::filesystem::path& path, const nlohmann::json& description = nlohmann::json::object(),
                       const std::map<std::string, std::string>& extra = {}) const {
    if (comm_.rank() != 0) return;
    const Net& net = model_.network();
    const auto& layout = net.store().entries();
    data::safetensors_writer w;
    nn::add_tensors<T>(w, layout, "", ema_.weights());
    nn::add_tensors<T>(w, layout, nn::weights_prefix, net.store().parameters());
    nn::add_tensors<T>(w, layout, nn::adam_m_prefix, adam_.first_moment());
    nn::add_tensors<T>(w, layout, nn::adam_v_prefix, adam_.second_moment());
    for (const auto& [key, value] : extra) w.set_metadata(key, value);
    w.set_metadata("softdiff", describe(description).dump());
    w.write(path);
  }

  /// Restores weights, Adam moments and step counter, EMA and step from a checkpoint that
  /// save_checkpoint wrote for the same network layout and trainer configuration. Everything
  /// is checked before anything changes; a mismatch throws listing every difference.
  void load_checkpoint(const data::safetensors_file& file) {
    Net& net = model_.network();
    const auto& layout = net.store().entries();
    nn::check_tensors<T>(file, layout, {std::string_view{}, nn::weights_prefix, nn::adam_m_prefix, nn::adam_v_prefix});
    const nlohmann::json meta = nn::metadata_json(file, "softdiff");
    const std::string where = "checkpoint '" + file.path + "': __metadata__ softdiff";
    const auto step = data::json_integer<std::int64_t>(data::json_member(meta, "step", where), where + ": \"step\"");
    softdiff::detail::require(step >= 0, where, ": \"step\" ", step, " is negative");
    const trainer_config theirs = trainer_config_from_json(meta, where);
    const nlohmann::json a = to_json(theirs), b = to_json(config_);
    if (a != b) {
      std::string diff;
      for (const auto& [key, value] : b.items())
        if (a[key] != value) diff += (diff.empty() ? "" : "; ") + key + ": checkpoint " + data::json_excerpt(a[key]) + ", this run " + data::json_excerpt(value);
      throw error("checkpoint '" + file.path + "' was written with another training configuration: " + diff);
    }
    nn::read_tensors<T>(file, layout, nn::weights_prefix, net.parameters());
    nn::read_tensors<T>(file, layout, nn::adam_m_prefix, adam_.first_moment());
    nn::read_tensors<T>(file, layout, nn::adam_v_prefix, adam_.second_moment());
    nn::read_tensors<T>(file, layout, "", ema_.weights());
    adam_.set_steps_taken(step);
    step_ = step;
  }

  void load_checkpoint(const std::filesystem::path& path) { load_checkpoint(data::read_safetensors(path)); }

  [[nodiscard]] Comm& communicator() { return comm_; }
  [[nodiscard]] const Comm& communicator() const { return comm_; }
  /// The replicas of the global batch and this process's block [first, last) of them (data-parallel).
  struct shard_plan {
    std::size_t replicas = 1, first = 0, last = 1, samples_per_replica = 0;
  };
  [[nodiscard]] const shard_plan& shards() const { return shards_; }

private:
  /// Deals the global batch's replicas out to the processes (see the top of this file).
  void plan_shards() {
    const auto P = static_cast<std::size_t>(comm_.size());
    const auto p = static_cast<std::size_t>(comm_.rank());
    const std::size_t B = config_.batch_size;
    if constexpr (ReplicatedDenoiser<Net>) {
      const std::size_t R = std::min(B, model_.network().max_replicas());
      softdiff::detail::require(P <= R, "train::trainer: ", P, " processes but the batch of ", B, " runs as ", R,
                      " replicas; data-parallel training needs at least one replica per process "
                      "(raise the network's replica count or the batch size, or use fewer processes)");
      softdiff::detail::require(B % R == 0, "train::trainer: the global batch of ", B, " samples does not split into ", R,
                      " equal replicas for ", P, " processes; choose a batch size divisible by ", R);
      shards_ = {R, R * p / P, R * (p + 1) / P, B / R};
    } else {
      throw error(softdiff::detail::concat("train::trainer: data-parallel training over ", P,
                                 " processes needs a network that hands back its replicas' gradients "
                                 "(ReplicatedDenoiser, e.g. nn::refunet)"));
    }
  }

  /// This process's replicas: the loss (normalised by the whole batch) and its gradients, then
  /// every replica's gradients from every process, added in replica order into the network's
  /// gradients. Returns the whole batch's loss (the processes' parts added in rank order). A
  /// failure on any process throws on every process, naming the rank.
  loss::loss_value sharded_loss_and_gradients(const noise_source& noise) {
    if constexpr (ReplicatedDenoiser<Net>) {
      Net& net = model_.network();
      const shard_plan& s = shards_;
      const std::size_t local = s.last - s.first, n0 = s.first * s.samples_per_replica;
      const std::size_t n_local = local * s.samples_per_replica, d = x0_.size() / x0_.shape()[0];
      const std::size_t count = net.parameter_count(), P = static_cast<std::size_t>(comm_.size());
      struct restore {
        Net& net;
        std::size_t k;
        ~restore() {
          net.set_max_replicas(k);
          net.set_sum_replicas(true);
        }
      } guard{net, net.max_replicas()};
      loss::loss_value v;
      std::string failure;
      try {
        ensure_shape(shard_, shape4{n_local, x0_.shape()[1], x0_.shape()[2], x0_.shape()[3]});
        std::copy_n(x0_.data() + n0 * d, n_local * d, shard_.data());
        net.set_max_replicas(local);
        net.set_sum_replicas(false);
        // the shard's noise is the global batch's at the shard's flat offset; N of 1/(N D) is B
        v = model_.loss(shard_, std::span<const double>(times_).subspan(n0, n_local), noise.shifted(n0 * d),
                        config_.weighting, config_.loss, &grad_phi_, config_.batch_size);
        net.backward(grad_phi_);
        softdiff::detail::require(net.replicas_in_use() == local, "the network ran ", net.replicas_in_use(), " replicas, not ",
                        local);
      } catch (const std::exception& e) {
        failure = e.what();
      }
      // [value, unweighted, failed] from every process: a failure anywhere stops every process here.
      const double mine[3] = {v.value, v.unweighted, failure.empty() ? 0.0 : 1.0};
      std::vector<double> parts(3 * P);
      const std::vector<std::size_t> threes(P, 3);
      comm_.all_gather(std::span<const double>(mine), std::span<double>(parts), std::span<const std::size_t>(threes));
      bool any_failed = false;
      for (std::size_t q = 0; q < P; ++q) any_failed = any_failed || parts[3 * q + 2] != 0.0;
      if (any_failed) backend::require_all_ok(comm_, failure);
      loss::loss_value total;
      for (std::size_t q = 0; q < P; ++q) {
        total.value += parts[3 * q];
        total.unweighted += parts[3 * q + 1];
      }
      softdiff::detail::require(std::isfinite(total.value), "the loss is ", total.value);

      // An exact reduce-scatter, then an all-gather: the parameters are cut into P slices; rank q
      // receives slice q of every replica's gradients (in replica order: ranks hold contiguous
      // blocks), adds them in replica order, and the summed slices are gathered everywhere. Each
      // process sends and receives about 2 (R / P) times the gradient's size, not R times.
      const std::size_t me = static_cast<std::size_t>(comm_.rank());
      auto slice_begin = [&](std::size_t q) { return count * q / P; };
      auto block = [&](std::size_t q) { return s.replicas * (q + 1) / P - s.replicas * q / P; };
      std::vector<std::size_t> send_counts(P), recv_counts(P), slices(P);
      for (std::size_t q = 0; q < P; ++q) slices[q] = slice_begin(q + 1) - slice_begin(q);
      for (std::size_t q = 0; q < P; ++q) {
        send_counts[q] = local * slices[q];
        recv_counts[q] = block(q) * slices[me];
      }
      send_.resize(local * count);
      for (std::size_t q = 0, at = 0; q < P; ++q)
        for (std::size_t j = 0; j < local; ++j, at += slices[q]) {
          const auto g = net.replica_gradients(j).subspan(slice_begin(q), slices[q]);
          std::ranges::copy(g, send_.begin() + static_cast<std::ptrdiff_t>(at));
        }
      recv_.resize(s.replicas * slices[me]);
      comm_.all_to_all(std::span<const T>(send_), std::span<const std::size_t>(send_counts), std::span<T>(recv_),
                       std::span<const std::size_t>(recv_counts));
      grads_.resize(s.replicas);
      for (std::size_t r = 0; r < s.replicas; ++r) grads_[r] = recv_.data() + r * slices[me];
      summed_.resize(slices[me]);
      nn::detail::sum_in_order<T>(std::span<T* const>(grads_), summed_.data(), slices[me], nn::detail::layer_threads());
      comm_.all_gather(std::span<const T>(summed_), net.gradients(), std::span<const std::size_t>(slices));
      return total;
    } else {
      throw error("train::trainer: data-parallel training needs a ReplicatedDenoiser");
    }
  }

  model_type model_;
  batch<T> data_;
  trainer_config config_;
  minibatch_source<T> batches_;
  nn::adam<T> adam_;
  nn::ema<T> ema_;
  std::int64_t step_ = 0;
  batch<T> x0_, grad_phi_, shard_;
  std::vector<double> times_;
  std::vector<T> saved_, send_, recv_, summed_;
  std::vector<T*> grads_;
  Comm comm_;
  shard_plan shards_;
};

/// train::trainer tr(SoftDiffusion(op, schedule, net), images, config[, communicator]) deduces the policies.
template <class Op, class Sched, class Net, class T>
trainer(SoftDiffusion<Op, Sched, Net>, batch<T>, trainer_config) -> trainer<Op, Sched, Net>;
template <class Op, class Sched, class Net, class T, backend::Communicator Comm>
trainer(SoftDiffusion<Op, Sched, Net>, batch<T>, trainer_config, Comm) -> trainer<Op, Sched, Net, Comm>;

}  // namespace softdiff::train
