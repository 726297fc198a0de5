#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

// Every test program counts its heap allocations and fills each fresh one with a NaN pattern
// (support/replace_new.hpp): no test may depend on what uninitialised memory happens to hold.
#define SOFTDIFF_POISON_HEAP 1
#include "support/replace_new.hpp"
