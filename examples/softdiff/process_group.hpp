#pragma once
// The processes `softdiff train` runs on (docs/distributed.md): one, or, in a tool built with
// SOFTDIFF_ENABLE_MPI and started by an MPI launcher (mpirun, mpiexec, srun), the ranks of that
// job. A Communicator (softdiff/backend/communicator.hpp) that the trainer takes as its policy;
// copies share one MPI communicator, and the last copy finalises MPI.
#include <cstddef>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <span>
#include <string>

#include "args.hpp"
#include "softdiff/backend/communicator.hpp"
#if SOFTDIFF_ENABLE_MPI
#include "softdiff/backend/mpi/communicator.hpp"
#endif

namespace softdiff::cli {

/// The job's size as an MPI launcher announces it to each process (Open MPI, MPICH/Hydra, Slurm),
/// or 0 outside such a launcher. Read without MPI, so a tool built without it can refuse.
[[nodiscard]] inline long launcher_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
    if (const char* s = std::getenv(v)) return std::strtol(s, nullptr, 10);
  return 0;
}

class process_group {
public:
  /// MPI when started by an MPI launcher in a tool built with MPI; one process otherwise. A job
  /// of several processes of a tool built without MPI is refused: each would train alone and
  /// overwrite the others' files.
  [[nodiscard]] static process_group start() {
    process_group g;
#if SOFTDIFF_ENABLE_MPI
    if (backend::mpi::launched_by_mpi()) {
      g.env_ = std::make_shared<backend::mpi::environment>();
      g.comm_ = std::make_shared<backend::mpi::communicator>();
    }
#else
    if (launcher_size() > 1)
      throw usage_error("started as " + std::to_string(launcher_size()) +
                        " processes, but this softdiff was built without MPI (configure with -DSOFTDIFF_ENABLE_MPI=ON "
                        "for data-parallel training; docs/distributed.md)");
#endif
    return g;
  }

  [[nodiscard]] int rank() const {
#if SOFTDIFF_ENABLE_MPI
    if (comm_) return comm_->rank();
#endif
    return 0;
  }
  [[nodiscard]] int size() const {
#if SOFTDIFF_ENABLE_MPI
    if (comm_) return comm_->size();
#endif
    return 1;
  }
  void barrier() {
#if SOFTDIFF_ENABLE_MPI
    if (comm_) comm_->barrier();
#endif
  }
  void broadcast(std::span<std::byte> bytes, int root) {
#if SOFTDIFF_ENABLE_MPI
    if (comm_) return comm_->broadcast(bytes, root);
#endif
    single_.broadcast(bytes, root);
  }
  template <class T>
  void all_gather(std::span<const T> mine, std::span<T> all, std::span<const std::size_t> counts) {
#if SOFTDIFF_ENABLE_MPI
    if (comm_) return comm_->all_gather(mine, all, counts);
#endif
    single_.all_gather(mine, all, counts);
  }
  template <class T>
  void all_to_all(std::span<const T> send, std::span<const std::size_t> send_counts, std::span<T> recv,
                  std::span<const std::size_t> recv_counts) {
#if SOFTDIFF_ENABLE_MPI
    if (comm_) return comm_->all_to_all(send, send_counts, recv, recv_counts);
#endif
    single_.all_to_all(send, send_counts, recv, recv_counts);
  }
  [[nodiscard]] std::string name() const {
#if SOFTDIFF_ENABLE_MPI
    if (comm_) return comm_->name();
#endif
    return single_.name();
  }

  /// Rank 0's decision, on every process (so that all stop at the same step).
  [[nodiscard]] bool agree(bool rank0_says) {
    std::byte b{static_cast<unsigned char>(rank0_says ? 1 : 0)};
    broadcast(std::span<std::byte>(&b, 1), 0);
    return b != std::byte{0};
  }

  /// Ends every process of the job with `code` after this one met an error the others may not
  /// have (they would wait for it in the next collective forever).
  [[noreturn]] void abort(int code) {
#if SOFTDIFF_ENABLE_MPI
    if (comm_) comm_->abort(code);
#endif
    std::exit(code);
  }

private:
  backend::single_process single_;
#if SOFTDIFF_ENABLE_MPI
  std::shared_ptr<backend::mpi::environment> env_;  // declared first: destroyed after comm_
  std::shared_ptr<backend::mpi::communicator> comm_;
#endif
};
static_assert(backend::Communicator<process_group>);

}  // namespace softdiff::cli
