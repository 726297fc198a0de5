// Data-parallel training (train/trainer.hpp, backend/communicator.hpp): the weights, Adam moments
// and EMA after K steps are bitwise those of one process, for 1, 2, 3 and 4 processes (threads
// of this program standing for processes, support/thread_communicator.hpp; tests/mpi/ runs the
// same over MPI), and a global batch that does not split is refused naming the numbers.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "support/thread_communicator.hpp"
#include "softdiff/nn/refunet.hpp"
#include "softdiff/op/gaussian_blur.hpp"
#include "softdiff/schedule/two_stage.hpp"
#include "softdiff/train/trainer.hpp"

using namespace softdiff;
using Catch::Matchers::Contains;

namespace {

using unet = nn::refunet<float>;
using single_trainer = train::trainer<op::gaussian_blur<float>, schedule::two_stage, unet>;
using parallel_trainer = train::trainer<op::gaussian_blur<float>, schedule::two_stage, unet, test::thread_communicator>;

schedule::two_stage small_schedule() {
  schedule::two_stage_parameters p;
  p.level_max = 2.0;
  return schedule::two_stage(p);
}

batch<float> tiny_data(std::size_t m) {
  batch<float> x(shape4{m, 1, 8, 8});
  for (std::size_t n = 0; n < m; ++n)
    for (std::size_t i = 0; i < 64; ++i)
      x.data()[n * 64 + i] = static_cast<float>(std::sin(0.3 * static_cast<double>(n) + 0.2 * static_cast<double>(i)));
  return x;
}

nn::refunet_config tiny_net() {
  nn::refunet_config cfg;
  cfg.base_channels = 8;
  cfg.channel_mult = {1, 2};
  return cfg;
}

train::trainer_config config(std::size_t batch_size, loss::loss_kind kind = loss::loss_kind::ssm) {
  train::trainer_config c;
  c.seed = 17;
  c.batch_size = batch_size;
  c.adam.lr = 1e-3;
  c.adam.warmup_steps = 2;
  c.ema_decay = 0.8;
  c.loss = kind;
  return c;
}

SoftDiffusion<op::gaussian_blur<float>, schedule::two_stage, unet> model() {
  return SoftDiffusion(op::gaussian_blur<float>(4), small_schedule(), unet(tiny_net(), 3));
}

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(*a.data())) == 0;
}

struct state {
  std::vector<float> weights, m, v, ema;
  double loss = 0;
};

template <class Trainer>
state state_of(const Trainer& t, double loss) {
  const auto w = t.model().network().parameters();
  return {{w.begin(), w.end()},
          {t.optimizer().first_moment().begin(), t.optimizer().first_moment().end()},
          {t.optimizer().second_moment().begin(), t.optimizer().second_moment().end()},
          {t.average().weights().begin(), t.average().weights().end()},
          loss};
}

/// K steps on `ranks` threads standing for processes; every rank's final state.
std::vector<state> run_parallel(int ranks, std::size_t batch_size, int steps, loss::loss_kind kind) {
  std::vector<state> out(static_cast<std::size_t>(ranks));
  test::run_ranks(ranks, [&](test::thread_communicator& c) {
    const auto r = static_cast<std::size_t>(c.rank());
    parallel_trainer t(model(), tiny_data(12), config(batch_size, kind), c);
    double loss = 0;
    for (int k = 0; k < steps; ++k) loss = t.step().loss;
    out[r] = state_of(t, loss);
  });
  return out;
}

}  // namespace

TEST_CASE("data-parallel training: 1, 2, 3 and 4 processes give bitwise the weights of one", "[train][distributed]") {
  for (const auto kind : {loss::loss_kind::ssm, loss::loss_kind::dsm}) {
    INFO("loss " << static_cast<int>(kind));
    single_trainer one(model(), tiny_data(12), config(8, kind));
    double loss = 0;
    for (int k = 0; k < 3; ++k) loss = one.step().loss;
    const state reference = state_of(one, loss);
    CHECK_FALSE(same_bits(reference.weights, reference.ema));
    for (int ranks = 1; ranks <= 4; ++ranks) {
      INFO(ranks << " processes");
      const std::vector<state> all = run_parallel(ranks, 8, 3, kind);
      for (const state& s : all) {
        CHECK(same_bits(s.weights, reference.weights));
        CHECK(same_bits(s.m, reference.m));
        CHECK(same_bits(s.v, reference.v));
        CHECK(same_bits(s.ema, reference.ema));
        // the loss is the processes' parts added: equal to rounding
        CHECK(s.loss == Approx(reference.loss).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("data-parallel training: a batch that does not split is refused, naming the numbers", "[train][distributed]") {
  // 4 replicas by default: a batch of 6 does not split into them
  CHECK_THROWS_WITH(run_parallel(2, 6, 1, loss::loss_kind::ssm),
                    Contains("global batch of 6 samples does not split into 4 equal replicas for 2 processes"));
  // a batch of 2 runs as 2 replicas: 3 processes would leave one without work
  CHECK_THROWS_WITH(run_parallel(3, 2, 1, loss::loss_kind::ssm), Contains("3 processes but the batch of 2 runs as 2 replicas"));
}

TEST_CASE("thread communicator: a rank that fails outside a collective stops the others instead of hanging them",
          "[distributed]") {
  std::vector<int> barriers_passed(3, 0), stopped(3, 0);  // one element per rank
  // rank 1 throws before its first barrier; ranks 0 and 2 wait there, then meet rank_failed
  CHECK_THROWS_WITH(test::run_ranks(3,
                                    [&](test::thread_communicator& c) {
                                      const auto r = static_cast<std::size_t>(c.rank());
                                      if (r == 1) throw error("rank 1 could not read its shard");
                                      try {
                                        for (int k = 0; k < 3; ++k) {
                                          c.barrier();
                                          ++barriers_passed[r];
                                        }
                                      } catch (const test::rank_failed&) {
                                        stopped[r] = 1;
                                        throw;
                                      }
                                    }),
                    Contains("rank 1 could not read its shard"));
  CHECK(stopped == std::vector<int>{1, 0, 1});
  CHECK(barriers_passed == std::vector<int>{0, 0, 0});
  // a failure in the middle of a collective: the others leave all_gather by rank_failed
  CHECK_THROWS_WITH(test::run_ranks(2,
                                    [&](test::thread_communicator& c) {
                                      std::vector<float> mine(2, 1.0f), all(4);
                                      const std::vector<std::size_t> counts{2, 2};
                                      c.barrier();
                                      if (c.rank() == 0) throw error("rank 0 ran out of memory");
                                      c.all_gather<float>(mine, all, counts);
                                    }),
                    Contains("rank 0 ran out of memory"));
}

TEST_CASE("thread communicator and the agreement helpers", "[distributed]") {
  constexpr int P = 3;
  auto group = std::make_shared<test::thread_group>(P);
  std::vector<std::string> errors(P), texts(P);
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r)
    threads.emplace_back([&, r] {
      test::thread_communicator c(group, r);
      texts[r] = backend::all_gather_text(c, std::string(static_cast<std::size_t>(r) + 1, static_cast<char>('a' + r)))[2];
      try {
        backend::require_same_everywhere(c, r == 2 ? "lr 1\nbatch 64\n" : "lr 1\nbatch 32\n", "configuration");
      } catch (const error& e) {
        errors[r] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (int r = 0; r < P; ++r) {
    CHECK(texts[r] == "ccc");
    CHECK(errors[r] == "ranks disagree on the configuration: rank 0 has 'batch 32', rank 2 has 'batch 64'");
  }
}
