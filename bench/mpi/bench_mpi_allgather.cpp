// The communication of one data-parallel training step (docs/distributed.md): the all-gather of R
// replicas' gradients (R x G floats in all, the ranks holding equal blocks) through softdiff's
// MPI communicator, against MPI_Allreduce of G floats (what frameworks that do not promise
// bitwise results use), for gradient sizes G from 16 KiB to 64 MiB. Median of `reps` timings per
// size, after a warm-up. Run under mpirun:
//   mpirun -np 2 build/bench/mpi/bench_mpi_allgather [replicas=4] [reps=20]
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "softdiff/backend/mpi/communicator.hpp"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  softdiff::backend::mpi::environment env(&argc, &argv);
  softdiff::backend::mpi::communicator comm;
  const std::size_t R = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 4;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 20;
  const auto P = static_cast<std::size_t>(comm.size()), p = static_cast<std::size_t>(comm.rank());
  if (R < P) {
    if (p == 0) std::fprintf(stderr, "bench_mpi_allgather: %zu replicas for %zu processes\n", R, P);
    return 2;
  }
  if (p == 0)
    std::printf("processes %zu, replicas %zu\n%12s %14s %14s %14s %14s\n", P, R, "G (bytes)", "allgather ms",
                "GB/s (recv)", "allreduce ms", "ratio");
  std::vector<std::size_t> sizes = {4096, 16384, 65536, 262144, 387201, 1048576, 4194304, 16777216};
  for (std::size_t g : sizes) {
    std::vector<std::size_t> counts(P);
    for (std::size_t q = 0; q < P; ++q) counts[q] = (R * (q + 1) / P - R * q / P) * g;
    std::vector<float> mine(counts[p], 1.0f), all(R * g), grad(g, 1.0f), sum(g);
    std::vector<double> t_gather, t_reduce;
    for (int k = -2; k < reps; ++k) {
      comm.barrier();
      auto t0 = std::chrono::steady_clock::now();
      comm.all_gather(std::span<const float>(mine), std::span<float>(all), std::span<const std::size_t>(counts));
      auto t1 = std::chrono::steady_clock::now();
      comm.barrier();
      auto t2 = std::chrono::steady_clock::now();
      MPI_Allreduce(grad.data(), sum.data(), static_cast<int>(g), MPI_FLOAT, MPI_SUM, comm.native());
      auto t3 = std::chrono::steady_clock::now();
      if (k >= 0) {
        t_gather.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        t_reduce.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
      }
    }
    // the slowest rank's median decides the step
    double mg = median(t_gather), mr = median(t_reduce), worst[2] = {0, 0}, mine2[2] = {mg, mr};
    MPI_Allreduce(mine2, worst, 2, MPI_DOUBLE, MPI_MAX, comm.native());
    if (p == 0) {
      const double recv_bytes = static_cast<double>((R * g - counts[0]) * sizeof(float));
      std::printf("%12zu %14.3f %14.2f %14.3f %14.2f\n", g * sizeof(float), worst[0], recv_bytes / worst[0] / 1e6,
                  worst[1], worst[0] / worst[1]);
    }
  }
  return 0;
}
