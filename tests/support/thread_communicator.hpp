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
  explicit thread_group(int n) : size(n), sync(n) {}
  int size;
  std::barrier<> sync;
  std::vector<std::byte> buffer;
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
  [[nodiscard]] std::string name() const { return "threads, " + std::to_string(size()) + " ranks"; }

private:
  std::shared_ptr<thread_group> g_;
  int rank_;
};
static_assert(backend::Communicator<thread_communicator>);

}  // namespace softdiff::test
