#pragma once
// The MPI model of the Communicator policy (backend/communicator.hpp), on Open MPI or any MPI-3
// library: compiled only with SOFTDIFF_ENABLE_MPI (CMake finds MPI and links MPI::MPI_CXX). This
// is the one file of the library that includes <mpi.h>.
//
// mpi::environment initialises MPI for the program's lifetime (MPI_THREAD_FUNNELED: only the main
// thread calls MPI; OpenMP threads work between the calls). mpi::communicator duplicates
// MPI_COMM_WORLD, so that its collectives never meet a user's, and returns MPI errors to the
// caller instead of aborting (MPI_ERRORS_RETURN), where they become softdiff::error naming the
// call, the rank and MPI's message.
#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <mpi.h>

#include "softdiff/backend/communicator.hpp"
#include "softdiff/error.hpp"

namespace softdiff::backend::mpi {

/// True when the process was started by an MPI launcher (mpirun, mpiexec, srun): the variables
/// Open MPI, MPICH, PMIx and Slurm's PMI set for each rank. A tool can stay a plain program
/// otherwise.
[[nodiscard]] inline bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

/// MPI_Init_thread / MPI_Finalize for the lifetime of this object (nothing when MPI was already
/// initialised by someone else, who then finalises it).
class environment {
public:
  environment(int* argc = nullptr, char*** argv = nullptr) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (initialised) return;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw error("MPI: MPI_Init_thread failed");
    owner_ = true;
  }
  environment(const environment&) = delete;
  environment& operator=(const environment&) = delete;
  ~environment() {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (owner_ && !finalised) MPI_Finalize();
  }

private:
  bool owner_ = false;
};

class communicator {
public:
  /// A duplicate of `base` (default MPI_COMM_WORLD); MPI must be initialised (environment).
  explicit communicator(MPI_Comm base = MPI_COMM_WORLD) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    softdiff::detail::require(initialised != 0, "mpi::communicator: MPI is not initialised (make an mpi::environment first)");
    check(MPI_Comm_dup(base, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  communicator(const communicator&) = delete;
  communicator& operator=(const communicator&) = delete;
  communicator(communicator&& o) noexcept : comm_(o.comm_), rank_(o.rank_), size_(o.size_) { o.comm_ = MPI_COMM_NULL; }
  communicator& operator=(communicator&&) = delete;
  ~communicator() {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (comm_ != MPI_COMM_NULL && !finalised) MPI_Comm_free(&comm_);
  }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  void barrier() { check(MPI_Barrier(comm_), "MPI_Barrier"); }

  void broadcast(std::span<std::byte> bytes, int root) {
    softdiff::detail::require(root >= 0 && root < size_, "mpi::communicator::broadcast: root ", root, " outside [0, ",
                              size_, ")");
    for (std::size_t at = 0; at < bytes.size(); at += chunk) {
      const std::size_t n = std::min(chunk, bytes.size() - at);
      check(MPI_Bcast(bytes.data() + at, static_cast<int>(n), MPI_BYTE, root, comm_), "MPI_Bcast");
    }
  }

  template <class T>
  void all_gather(std::span<const T> mine, std::span<T> all, std::span<const std::size_t> counts) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::byte>,
                  "mpi::communicator::all_gather: float, double or std::byte");
    detail::check_gather(mine.size(), all.size(), counts, rank_, size_, "mpi::communicator::all_gather");
    const auto c = int_counts(counts, "all_gather");
    check(MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), type<T>(), all.data(), c.first.data(),
                         c.second.data(), type<T>(), comm_),
          "MPI_Allgatherv");
  }

  template <class T>
  void all_to_all(std::span<const T> send, std::span<const std::size_t> send_counts, std::span<T> recv,
                  std::span<const std::size_t> recv_counts) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "mpi::communicator::all_to_all: float or double");
    detail::check_all_to_all(send.size(), send_counts, recv.size(), recv_counts, size_, "mpi::communicator::all_to_all");
    const auto sc = int_counts(send_counts, "all_to_all (send)");
    const auto rc = int_counts(recv_counts, "all_to_all (receive)");
    check(MPI_Alltoallv(send.data(), sc.first.data(), sc.second.data(), type<T>(), recv.data(), rc.first.data(),
                        rc.second.data(), type<T>(), comm_),
          "MPI_Alltoallv");
  }

  [[nodiscard]] std::string name() const { return "MPI, " + std::to_string(size_) + " processes"; }
  /// Ends every process of the job (MPI_Abort): for an error that only this process met, where
  /// the others would otherwise wait in their next collective forever.
  [[noreturn]] void abort(int code) const {
    MPI_Abort(comm_, code);
    std::exit(code);
  }
  [[nodiscard]] MPI_Comm native() const { return comm_; }

private:
  static constexpr std::size_t chunk = std::size_t{1} << 30;

  /// MPI's int counts and displacements of `counts`; larger ones are refused by name.
  [[nodiscard]] static std::pair<std::vector<int>, std::vector<int>> int_counts(std::span<const std::size_t> counts,
                                                                                const char* what) {
    std::vector<int> n(counts.size()), displ(counts.size());
    std::size_t at = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      softdiff::detail::require(counts[r] <= INT_MAX && at <= INT_MAX, "mpi::communicator::", what, ": ", counts[r],
                                " elements for rank ", r, " at offset ", at, " exceed MPI's int counts (split the buffer)");
      n[r] = static_cast<int>(counts[r]);
      displ[r] = static_cast<int>(at);
      at += counts[r];
    }
    return {std::move(n), std::move(displ)};
  }

  template <class T>
  static MPI_Datatype type() {
    if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
    else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
    else return MPI_BYTE;
  }

  void check(int code, const char* call) const {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    throw error("MPI: " + std::string(call) + " failed on rank " + std::to_string(rank_) + ": " + std::string(text, len));
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};
static_assert(Communicator<communicator>);

}  // namespace softdiff::backend::mpi
