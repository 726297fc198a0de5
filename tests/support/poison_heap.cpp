// A shared library that the tool tests preload into the softdiff tool (LD_PRELOAD, see
// cli_runner.hpp): its operator new replaces libstdc++'s in the tool, so the tool's fresh heap is
// NaN-filled too, like every test program's (catch_main.cpp).
#define SOFTDIFF_POISON_HEAP 1
#include "replace_new.hpp"
