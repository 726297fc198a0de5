#pragma once
// A Communicator whose "processes" are threads of one test program (backend/communicator.hpp),
// so that data-parallel training is tested bit for bit in every build, MPI or not: all_gather
// writes each rank's part into one shared buffer between two barriers.
#include <barrier>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "softdiff/backend/communicator.hpp"

namespace softdiff::test {

struct thread_group {
  explicit thread_group(int n)
      : size(n), sync(n), sends(static_cast<std::size_t>(n)), send_counts(static_cast<std::size_t>(n)) {}
  int size;
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
  void barrier() { g_->sync.arrive_and_wait(); }
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

}  // namespace softdiff::test
