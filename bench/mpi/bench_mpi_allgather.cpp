// The communication of one data-parallel training step (docs/distributed.md), as the trainer does
// it through softdiff's MPI communicator: the exact reduce-scatter of R replicas' gradients of G
// floats (all_to_all of parameter slices, then the sum in replica order) and the all-gather of
// the summed slices; against MPI_Allreduce of G floats (what frameworks that do not promise
// bitwise results use), and against the plain all-gather of all R buffers. Gradient sizes from
// 16 KiB to 64 MiB; median of `reps` timings per size (the slowest rank's), after a warm-up.
// Run under mpirun:
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
    std::printf("processes %zu, replicas %zu; milliseconds per step\n%12s %14s %14s %14s %12s\n", P, R, "G (bytes)",
                "exact (a2a+ag)", "allreduce", "allgather R", "exact/allred");
  const std::vector<std::size_t> sizes = {4096, 16384, 65536, 262144, 387201, 1048576, 4194304, 16777216};
  for (std::size_t g : sizes) {
    auto block = [&](std::size_t q) { return R * (q + 1) / P - R * q / P; };
    std::vector<std::size_t> slices(P), send_counts(P), recv_counts(P), gather_counts(P);
    for (std::size_t q = 0; q < P; ++q) slices[q] = g * (q + 1) / P - g * q / P;
    for (std::size_t q = 0; q < P; ++q) {
      send_counts[q] = block(p) * slices[q];
      recv_counts[q] = block(q) * slices[p];
      gather_counts[q] = block(q) * g;
    }
    std::vector<float> send(block(p) * g, 1.0f), recv(R * slices[p]), summed(slices[p]), grad(g, 1.0f), sum(g),
        all(R * g);
    std::vector<double> t_exact, t_reduce, t_gather;
    for (int k = -2; k < reps; ++k) {
      comm.barrier();
      auto t0 = std::chrono::steady_clock::now();
      comm.all_to_all(std::span<const float>(send), std::span<const std::size_t>(send_counts), std::span<float>(recv),
                      std::span<const std::size_t>(recv_counts));
      for (std::size_t i = 0; i < slices[p]; ++i) {
        float a = recv[i];
        for (std::size_t r = 1; r < R; ++r) a += recv[r * slices[p] + i];
        summed[i] = a;
      }
      comm.all_gather(std::span<const float>(summed), std::span<float>(grad), std::span<const std::size_t>(slices));
      auto t1 = std::chrono::steady_clock::now();
      comm.barrier();
      auto t2 = std::chrono::steady_clock::now();
      MPI_Allreduce(grad.data(), sum.data(), static_cast<int>(g), MPI_FLOAT, MPI_SUM, comm.native());
      auto t3 = std::chrono::steady_clock::now();
      comm.barrier();
      auto t4 = std::chrono::steady_clock::now();
      comm.all_gather(std::span<const float>(send), std::span<float>(all), std::span<const std::size_t>(gather_counts));
      auto t5 = std::chrono::steady_clock::now();
      if (k >= 0) {
        t_exact.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        t_reduce.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
        t_gather.push_back(std::chrono::duration<double, std::milli>(t5 - t4).count());
      }
    }
    double mine[3] = {median(t_exact), median(t_reduce), median(t_gather)}, worst[3] = {0, 0, 0};
    MPI_Allreduce(mine, worst, 3, MPI_DOUBLE, MPI_MAX, comm.native());
    if (p == 0)
      std::printf("%12zu %14.3f %14.3f %14.3f %12.2f\n", g * sizeof(float), worst[0], worst[1], worst[2],
                  worst[0] / worst[1]);
  }
  return 0;
}
