#pragma once
// A Communicator whose "processes" are threads of one test program (backend/communicator.hpp),
// so that data-parallel training is tested bit for bit in every build, MPI or not: all_gather
// writes each rank's part into one shared buffer between two barriers.
//
// A rank that fails must not leave the others waiting at a barrier for ever (a hung test outlives
// CI's time limit): run_ranks catches a rank's exception and abandons the group, which drops the
// rank from the barrier and makes every later collective of the others throw rank_failed at once.
#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "softdiff/backend/communicator.hpp"
#include "softdiff/error.hpp"

namespace softdiff::test {

/// Thrown by the collectives of the ranks still running once another rank has failed.
struct rank_failed : error {
  rank_failed() : error("thread_communicator: another rank failed; its own exception says why") {}
};

struct thread_group {
  explicit thread_group(int n)
      : size(n), sync(n), sends(static_cast<std::size_t>(n)), send_counts(static_cast<std::size_t>(n)) {}
  /// Called once by a rank that leaves with an exception: later phases wait for one rank fewer,
  /// and the others throw rank_failed from their next barrier.
  void abandon() {
    failed = true;
    sync.arrive_and_drop();
  }
  int size;
  std::atomic<bool> failed{false};
  std::barrier<> sync;
  std::vector<std::byte> buffer;
  std::vector<const void*> sends;                // all_to_all: each rank's send buffer
  std::vector<const std::size_t*> send_counts;  // and its counts
};

class thread_communicator {
public:
  thread_communicator(std::shared_ptr<thread_group> g, int rank) : g_(std::move(g)), rank_(rank) {}
  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return g_->size; }
  void barrier() {
    if (g_->failed) throw rank_failed();
    g_->sync.arrive_and_wait();
    if (g_->failed) throw rank_failed();
  }
  void broadcast(std::span<std::byte> bytes, int root) {
    if (rank_ == root) g_->buffer.assign(bytes.begin(), bytes.end());
    barrier();
    if (rank_ != root) std::memcpy(bytes.data(), g_->buffer.data(), bytes.size());
    barrier();
  }
  template <class T>
  void all_gather(std::span<const T> mine, std::span<T> all, std::span<const std::size_t> counts) {
    backend::detail::check_gather(mine.size(), all.size(), counts, rank_, size(), "thread_communicator::all_gather");
    std::size_t offset = 0;
    for (int r = 0; r < rank_; ++r) offset += counts[static_cast<std::size_t>(r)];
    if (rank_ == 0) g_->buffer.resize(all.size_bytes());
    barrier();
    std::memcpy(g_->buffer.data() + offset * sizeof(T), mine.data(), mine.size_bytes());
    barrier();
    std::memcpy(all.data(), g_->buffer.data(), all.size_bytes());
    barrier();
  }
  template <class T>
  void all_to_all(std::span<const T> send, std::span<const std::size_t> send_counts, std::span<T> recv,
                  std::span<const std::size_t> recv_counts) {
    backend::detail::check_all_to_all(send.size(), send_counts, recv.size(), recv_counts, size(),
                                      "thread_communicator::all_to_all");
    g_->sends[static_cast<std::size_t>(rank_)] = send.data();
    g_->send_counts[static_cast<std::size_t>(rank_)] = send_counts.data();
    barrier();
    std::size_t at = 0;
    for (int p = 0; p < size(); ++p) {  // rank p's part for this rank starts after its parts for ranks < rank_
      const std::size_t* c = g_->send_counts[static_cast<std::size_t>(p)];
      std::size_t offset = 0;
      for (int q = 0; q < rank_; ++q) offset += c[q];
      const std::size_t n = c[rank_];
      softdiff::detail::require(n == recv_counts[static_cast<std::size_t>(p)], "thread_communicator::all_to_all: rank ",
                                p, " sends ", n, " elements, this rank expects ", recv_counts[static_cast<std::size_t>(p)]);
      std::memcpy(recv.data() + at, static_cast<const T*>(g_->sends[static_cast<std::size_t>(p)]) + offset, n * sizeof(T));
      at += n;
    }
    barrier();
  }
  [[nodiscard]] std::string name() const { return "threads, " + std::to_string(size()) + " ranks"; }

private:
  std::shared_ptr<thread_group> g_;
  int rank_;
};
static_assert(backend::Communicator<thread_communicator>);

/// Runs body(communicator of rank r) on `ranks` threads and waits for them all. A rank's
/// exception abandons the group (no other rank hangs) and is rethrown here: the first one that
/// is not a rank_failed, so the cause wins over its consequences.
inline void run_ranks(int ranks, const std::function<void(thread_communicator&)>& body) {
  auto group = std::make_shared<thread_group>(ranks);
  std::vector<std::exception_ptr> failures(static_cast<std::size_t>(ranks));
  std::vector<char> consequence(static_cast<std::size_t>(ranks), 0);  // not vector<bool>: threads write it
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      const auto i = static_cast<std::size_t>(r);
      try {
        thread_communicator c(group, r);
        body(c);
      } catch (const rank_failed&) {
        failures[i] = std::current_exception(), consequence[i] = 1;
        group->abandon();
      } catch (...) {
        failures[i] = std::current_exception();
        group->abandon();
      }
    });
  for (auto& th : threads) th.join();
  for (std::size_t i = 0; i < failures.size(); ++i)
    if (failures[i] && !consequence[i]) std::rethrow_exception(failures[i]);
  for (const auto& f : failures)
    if (f) std::rethrow_exception(f);
}

}  // namespace softdiff::test
