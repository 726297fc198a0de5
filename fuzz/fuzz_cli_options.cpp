// The softdiff tool's option parser (examples/softdiff/args.hpp) and the list options of
// `softdiff eval` (eval_options.hpp). The input is a command line: arguments separated by NUL
// bytes. Every accessor is tried on every declared option; a mistake must be a usage_error (exit
// status 2 in the tool) or a softdiff::error, never another exception or a crash.
#include <sstream>
#include <string>
#include <vector>

#include "args.hpp"
#include "eval_options.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace softdiff;
  std::vector<std::string> args;
  std::string current;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (!current.empty() || args.empty()) args.push_back(current);

  cli::arg_parser a("softdiff fuzz", "every kind of option the subcommands declare");
  a.required("ckpt", "FILE", "a required option")
      .option("steps", "N", "an integer", "100")
      .option("lr", "X", "a number", "2e-4")
      .option("sampler", "LIST", "eval's sampler list", "naive,momentum")
      .option("step-list", "LIST", "eval's step list", "20,50")
      .option("seeds", "LIST", "eval's seed list", "3")
      .option("clip", "on|off", "eval's clip switch", "on")
      .option("out", "DIR", "a path")
      .flag("resume", "a flag")
      .epilog("text after the options");
  try {
    std::ostringstream help;
    if (!a.parse(args, help)) return 0;
    for (const char* name : {"ckpt", "steps", "lr", "sampler", "step-list", "seeds", "clip", "out", "resume"}) {
      (void)a.given(name);
      if (!a.has(name)) continue;
      (void)a.text(name);
      fuzz::refusal_allowed([&] {
        try {
          (void)a.number(name);
        } catch (const cli::usage_error&) {
        }
        try {
          (void)a.integer(name, -5, 1000000);
        } catch (const cli::usage_error&) {
        }
      });
    }
    fuzz::refusal_allowed([&] {
      try {
        (void)cli::sampler_list_option(a.text("sampler"));
      } catch (const cli::usage_error&) {
      }
      try {
        (void)cli::steps_list_option(a.text("step-list"));
      } catch (const cli::usage_error&) {
      }
      try {
        (void)cli::seeds_list_option(a.text("seeds"));
      } catch (const cli::usage_error&) {
      }
      try {
        (void)cli::clip_option(a.text("clip"));
      } catch (const cli::usage_error&) {
      }
    });
  } catch (const cli::usage_error&) {
  }
  return 0;
}
