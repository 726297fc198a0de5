#pragma once
// The NCCL model of the Communicator policy (backend/communicator.hpp), for processes that each
// drive one GPU: every span is DEVICE memory, and each collective is enqueued on the
// communicator's stream and waited for before it returns (the CPU trainer's contract: the result
// is there when the call ends). Compiled with SOFTDIFF_ENABLE_CUDA (the CUDA toolkit ships NCCL;
// link NCCL, e.g. `nccl` from the toolkit's library directory). docs/distributed.md says what
// has run: this model is compiled in CI (tests/cuda/nccl_compile.cu) but has not run on a GPU,
// and the trainer's gradients are host memory today, so data-parallel training uses the MPI model.
//
// Bootstrap: rank 0 makes an id (make_id) and every process receives its bytes before
// constructing the communicator, e.g. through mpi::communicator::broadcast.
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <cuda_runtime.h>
#include <nccl.h>

#include "softdiff/backend/communicator.hpp"
#include "softdiff/error.hpp"

namespace softdiff::backend::cuda {

class nccl_communicator {
public:
  /// A fresh id for a new group (call on one process, share its bytes with the others).
  [[nodiscard]] static ncclUniqueId make_id() {
    ncclUniqueId id;
    check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", -1);
    return id;
  }

  /// Joins group `id` as `rank` of `size` on the current CUDA device.
  nccl_communicator(const ncclUniqueId& id, int rank, int size) : rank_(rank), size_(size) {
    softdiff::detail::require(size > 0 && rank >= 0 && rank < size, "nccl_communicator: rank ", rank, " of ", size);
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    check_nccl(ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank", rank);
    check_cuda(cudaMalloc(&flag_, sizeof(int)), "cudaMalloc");
  }
  nccl_communicator(const nccl_communicator&) = delete;
  nccl_communicator& operator=(const nccl_communicator&) = delete;
  ~nccl_communicator() {
    if (flag_ != nullptr) cudaFree(flag_);
    if (comm_ != nullptr) ncclCommDestroy(comm_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }

  /// An all-reduce of one device int: returns when every process has reached it.
  void barrier() {
    check_nccl(ncclAllReduce(flag_, flag_, 1, ncclInt32, ncclSum, comm_, stream_), "ncclAllReduce", rank_);
    wait();
  }

  void broadcast(std::span<std::byte> bytes, int root) {
    softdiff::detail::require(root >= 0 && root < size_, "nccl_communicator::broadcast: root ", root, " outside [0, ",
                              size_, ")");
    check_nccl(ncclBroadcast(bytes.data(), bytes.data(), bytes.size(), ncclUint8, root, comm_, stream_), "ncclBroadcast",
               rank_);
    wait();
  }

  /// NCCL's all-gather takes equal counts; unequal ones (the trainer's replica blocks) are one
  /// broadcast per rank into its place, grouped into one NCCL launch.
  template <class T>
  void all_gather(std::span<const T> mine, std::span<T> all, std::span<const std::size_t> counts) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::byte>,
                  "nccl_communicator::all_gather: float, double or std::byte");
    detail::check_gather(mine.size(), all.size(), counts, rank_, size_, "nccl_communicator::all_gather");
    std::size_t at = 0;
    check_nccl(ncclGroupStart(), "ncclGroupStart", rank_);
    for (int r = 0; r < size_; ++r) {
      const std::size_t n = counts[static_cast<std::size_t>(r)];
      const void* send = r == rank_ ? static_cast<const void*>(mine.data()) : static_cast<const void*>(all.data() + at);
      check_nccl(ncclBroadcast(send, all.data() + at, n, type<T>(), r, comm_, stream_), "ncclBroadcast", rank_);
      at += n;
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd", rank_);
    wait();
  }

  /// Point-to-point sends and receives, grouped into one NCCL launch.
  template <class T>
  void all_to_all(std::span<const T> send, std::span<const std::size_t> send_counts, std::span<T> recv,
                  std::span<const std::size_t> recv_counts) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "nccl_communicator::all_to_all: float or double");
    detail::check_all_to_all(send.size(), send_counts, recv.size(), recv_counts, size_, "nccl_communicator::all_to_all");
    std::size_t s = 0, r = 0;
    check_nccl(ncclGroupStart(), "ncclGroupStart", rank_);
    for (int q = 0; q < size_; ++q) {
      const auto k = static_cast<std::size_t>(q);
      check_nccl(ncclSend(send.data() + s, send_counts[k], type<T>(), q, comm_, stream_), "ncclSend", rank_);
      check_nccl(ncclRecv(recv.data() + r, recv_counts[k], type<T>(), q, comm_, stream_), "ncclRecv", rank_);
      s += send_counts[k];
      r += recv_counts[k];
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd", rank_);
    wait();
  }

  [[nodiscard]] std::string name() const { return "NCCL, " + std::to_string(size_) + " GPUs"; }

private:
  template <class T>
  static ncclDataType_t type() {
    if constexpr (std::is_same_v<T, float>) return ncclFloat32;
    else if constexpr (std::is_same_v<T, double>) return ncclFloat64;
    else return ncclUint8;
  }
  void wait() { check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }
  static void check_nccl(ncclResult_t r, const char* call, int rank) {
    if (r != ncclSuccess)
      throw error(std::string("NCCL: ") + call + " failed" + (rank >= 0 ? " on rank " + std::to_string(rank) : "") +
                  ": " + ncclGetErrorString(r));
  }
  static void check_cuda(cudaError_t e, const char* call) {
    if (e != cudaSuccess) throw error(std::string("CUDA: ") + call + " failed: " + cudaGetErrorString(e));
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int* flag_ = nullptr;
  int rank_ = 0, size_ = 1;
};
static_assert(Communicator<nccl_communicator>);

}  // namespace softdiff::backend::cuda
