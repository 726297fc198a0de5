#pragma once
// The communicator policy of data-parallel training (train/trainer.hpp; docs/distributed.md):
// which process this is, how many there are, and the collectives training needs. Gradients are
// combined with all_gather, not an all-reduce: every process receives every replica's gradient
// and adds them in replica order (nn::detail::sum_in_order), an order fixed by the
// configuration, so the weights are bitwise the same on any number of processes. An all-reduce
// would leave the order of the additions to the engine and to the process count.
//
// single_process is the default: rank 0 of 1, every collective a copy, no cost. The MPI model
// is backend/mpi/communicator.hpp (compiled with SOFTDIFF_ENABLE_MPI); on GPUs,
// backend/cuda/nccl_communicator.cuh.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "softdiff/error.hpp"

namespace softdiff::backend {

/// A group of processes that train one model together.
///   rank(), size():             this process's index in [0, size) and the group's size
///   barrier():                  returns when every process has called it
///   broadcast(bytes, root):     every process's `bytes` becomes root's (same length everywhere)
///   all_gather(mine, all, counts): `all` becomes the concatenation, in rank order, of every
///                               process's `mine`; counts[r] = rank r's element count, the same
///                               array on every process (float, double and std::byte)
///   all_to_all(send, send_counts, recv, recv_counts): `send` is P consecutive parts, part q
///                               (send_counts[q] elements) for rank q; `recv` becomes the parts
///                               addressed to this process, in rank order (float and double)
///   name():                     for messages ("MPI, 4 processes")
/// Collectives are called by every process in the same order. A failure throws softdiff::error
/// naming the call.
template <class C>
concept Communicator = requires(C& c, const C& cc, std::span<const float> f_in, std::span<float> f_out,
                                std::span<const double> d_in, std::span<double> d_out,
                                std::span<const std::byte> b_in, std::span<std::byte> b_out,
                                std::span<const std::size_t> counts, int root) {
  { cc.rank() } -> std::convertible_to<int>;
  { cc.size() } -> std::convertible_to<int>;
  c.barrier();
  c.broadcast(b_out, root);
  c.all_gather(f_in, f_out, counts);
  c.all_gather(d_in, d_out, counts);
  c.all_gather(b_in, b_out, counts);
  c.all_to_all(f_in, counts, f_out, counts);
  c.all_to_all(d_in, counts, d_out, counts);
  { cc.name() } -> std::convertible_to<std::string>;
};

namespace detail {

/// The checks every model makes before a collective: counts has one entry per process, this
/// process sends counts[rank], and `all` holds their sum.
inline void check_gather(std::size_t mine, std::size_t all, std::span<const std::size_t> counts, int rank, int size,
                         const char* where) {
  using softdiff::detail::require;
  require(counts.size() == static_cast<std::size_t>(size), where, ": ", counts.size(), " counts for ", size,
          " processes");
  std::size_t total = 0;
  for (std::size_t c : counts) total += c;
  require(mine == counts[static_cast<std::size_t>(rank)], where, ": rank ", rank, " sends ", mine,
          " elements but counts says ", counts[static_cast<std::size_t>(rank)]);
  require(all == total, where, ": the output holds ", all, " elements, the counts add up to ", total);
}

/// The checks before an all_to_all: one count per process each way, buffers of the counts' sums.
inline void check_all_to_all(std::size_t send, std::span<const std::size_t> send_counts, std::size_t recv,
                             std::span<const std::size_t> recv_counts, int size, const char* where) {
  using softdiff::detail::require;
  require(send_counts.size() == static_cast<std::size_t>(size) && recv_counts.size() == static_cast<std::size_t>(size),
          where, ": ", send_counts.size(), " send and ", recv_counts.size(), " receive counts for ", size, " processes");
  std::size_t s = 0, r = 0;
  for (std::size_t c : send_counts) s += c;
  for (std::size_t c : recv_counts) r += c;
  require(send == s && recv == r, where, ": buffers of ", send, " and ", recv, " elements, counts adding up to ", s,
          " and ", r);
}

}  // namespace detail

/// One process: rank 0 of 1. The default communicator; costs a copy per all_gather.
struct single_process {
  [[nodiscard]] int rank() const { return 0; }
  [[nodiscard]] int size() const { return 1; }
  void barrier() {}
  void broadcast(std::span<std::byte>, int root) {
    softdiff::detail::require(root == 0, "single_process::broadcast: root ", root, " is not rank 0");
  }
  template <class T>
  void all_gather(std::span<const T> mine, std::span<T> all, std::span<const std::size_t> counts) {
    detail::check_gather(mine.size(), all.size(), counts, 0, 1, "single_process::all_gather");
    std::copy(mine.begin(), mine.end(), all.begin());
  }
  template <class T>
  void all_to_all(std::span<const T> send, std::span<const std::size_t> send_counts, std::span<T> recv,
                  std::span<const std::size_t> recv_counts) {
    detail::check_all_to_all(send.size(), send_counts, recv.size(), recv_counts, 1, "single_process::all_to_all");
    std::copy(send.begin(), send.end(), recv.begin());
  }
  [[nodiscard]] std::string name() const { return "single process"; }
};
static_assert(Communicator<single_process>);

/// Every process's `text`, in rank order (lengths may differ).
template <Communicator C>
[[nodiscard]] std::vector<std::string> all_gather_text(C& comm, const std::string& text) {
  const auto size = static_cast<std::size_t>(comm.size());
  const std::uint64_t n = text.size();
  std::vector<std::byte> lengths(8 * size);
  const std::vector<std::size_t> eight(size, 8);
  comm.all_gather(std::span<const std::byte>(reinterpret_cast<const std::byte*>(&n), 8), std::span<std::byte>(lengths),
                  std::span<const std::size_t>(eight));
  std::vector<std::size_t> counts(size);
  std::size_t total = 0;
  for (std::size_t r = 0; r < size; ++r) {
    std::uint64_t len = 0;
    std::memcpy(&len, lengths.data() + 8 * r, 8);
    counts[r] = static_cast<std::size_t>(len);
    total += counts[r];
  }
  std::vector<std::byte> all(total);
  comm.all_gather(std::span<const std::byte>(reinterpret_cast<const std::byte*>(text.data()), text.size()),
                  std::span<std::byte>(all), std::span<const std::size_t>(counts));
  std::vector<std::string> out(size);
  std::size_t at = 0;
  for (std::size_t r = 0; r < size; ++r) {
    out[r].assign(reinterpret_cast<const char*>(all.data()) + at, counts[r]);
    at += counts[r];
  }
  return out;
}

/// Makes every process agree that something succeeded: `problem` is empty where it did, else
/// what went wrong. Throws on every process (the same message) when any process reports a
/// problem, naming the first such rank, so that no process waits forever in a later collective.
template <Communicator C>
void require_all_ok(C& comm, const std::string& problem) {
  const std::vector<std::string> all = all_gather_text(comm, problem);
  for (std::size_t r = 0; r < all.size(); ++r)
    if (!all[r].empty())
      throw error(comm.size() == 1 ? all[r] : "rank " + std::to_string(r) + ": " + all[r]);
}

/// Checks that every process holds the same `text` (a configuration, a data fingerprint); throws
/// on every process naming `what`, the first rank that differs from rank 0 and the first
/// differing line.
template <Communicator C>
void require_same_everywhere(C& comm, const std::string& text, const std::string& what) {
  const std::vector<std::string> all = all_gather_text(comm, text);
  for (std::size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    std::size_t line_start = 0, i = 0;
    while (i < all[0].size() && i < all[r].size() && all[0][i] == all[r][i]) {
      if (all[0][i] == '\n') line_start = i + 1;
      ++i;
    }
    auto line = [&](const std::string& s) {
      const std::size_t end = s.find('\n', line_start);
      return line_start >= s.size() ? std::string("(nothing)") : s.substr(line_start, end == std::string::npos ? std::string::npos : end - line_start);
    };
    throw error("ranks disagree on the " + what + ": rank 0 has '" + line(all[0]) + "', rank " + std::to_string(r) +
                " has '" + line(all[r]) + "'");
  }
}

}  // namespace softdiff::backend
