// softdiff: the command-line tool. `softdiff <command> [options]`; `softdiff --help`,
// `softdiff help [command]` and `softdiff <command> --help` describe everything.
// Exit status: 0 success, 1 an error in the data or files, 2 a mistake on the command line.
#include <new>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include "args.hpp"
#include "commands.hpp"
#include "softdiff/error.hpp"

namespace {

using namespace softdiff::cli;

void print_usage(std::ostream& os) {
  os << "softdiff: Soft Diffusion (score matching for general linear corruptions), command-line tool\n\n"
        "Usage: softdiff <command> [options]\n\nCommands:\n";
  for (const command& c : command_table) {
    std::string left = "  " + std::string(c.name);
    left.resize(20, ' ');
    os << left << c.summary << "\n";
  }
  os << "  help [command]    show this help, or a command's help\n\n"
        "Run 'softdiff <command> --help' for a command's options.\n";
}

const command* find_command(std::string_view name) {
  for (const command& c : command_table)
    if (c.name == name) return &c;
  return nullptr;
}

int unknown_command(std::string_view name) {
  std::cerr << "softdiff: unknown command '" << name << "'\n\n";
  print_usage(std::cerr);
  return 2;
}

int run(const command& c, const arguments& args) {
  const std::string prefix = "softdiff " + std::string(c.name);
  try {
    return c.run(args);
  } catch (const usage_error& e) {
    std::cerr << prefix << ": " << e.what() << "\n(run '" << prefix << " --help' for usage)\n";
    return 2;
  } catch (const softdiff::error& e) {
    std::cerr << prefix << ": error: " << e.what() << "\n";
  } catch (const std::bad_alloc&) {
    std::cerr << prefix << ": error: out of memory: this run asked for more memory than the machine could give"
              << " (a smaller --batch, --count or --chunk, or a smaller network, needs less)\n";
  } catch (const std::exception& e) {
    std::cerr << prefix << ": error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << prefix << ": error: unknown exception\n";
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(std::cerr);
    return 2;
  }
  const std::string_view first = argv[1];
  if (first == "--help" || first == "-h" || (first == "help" && argc == 2)) {
    print_usage(std::cout);
    return 0;
  }
  if (first == "help") {
    const command* c = find_command(argv[2]);
    return c ? run(*c, {"--help"}) : unknown_command(argv[2]);
  }
  const command* c = find_command(first);
  if (c == nullptr) return unknown_command(first);
  return run(*c, arguments(argv + 2, argv + argc));
}
