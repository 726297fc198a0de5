// Compiles the NCCL communicator's collectives (backend/cuda/nccl_communicator.cuh) in CI, where
// no GPU exists: an object library, never linked or run. docs/distributed.md says what has run.
#include "softdiff/backend/cuda/nccl_communicator.cuh"

template void softdiff::backend::cuda::nccl_communicator::all_gather<float>(std::span<const float>, std::span<float>,
                                                                           std::span<const std::size_t>);
template void softdiff::backend::cuda::nccl_communicator::all_gather<double>(std::span<const double>, std::span<double>,
                                                                            std::span<const std::size_t>);
template void softdiff::backend::cuda::nccl_communicator::all_gather<std::byte>(std::span<const std::byte>,
                                                                               std::span<std::byte>,
                                                                               std::span<const std::size_t>);
template void softdiff::backend::cuda::nccl_communicator::all_to_all<float>(std::span<const float>,
                                                                           std::span<const std::size_t>,
                                                                           std::span<float>,
                                                                           std::span<const std::size_t>);
