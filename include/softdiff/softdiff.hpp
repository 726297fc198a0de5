#pragma once
// Umbrella header: everything softdiff offers on the CPU backend.
#include "softdiff/error.hpp"
#include "softdiff/tensor.hpp"
#include "softdiff/random.hpp"
#include "softdiff/concepts.hpp"
#include "softdiff/backend/cpu.hpp"
#include "softdiff/op/identity.hpp"
#include "softdiff/op/scale.hpp"
