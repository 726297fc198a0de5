// Crash-safe training: `softdiff train` is killed with SIGKILL again and again, at moments spread
// over its whole run (loading, training, writing a checkpoint or a sample grid), each time resumed
// in the same directory. After every kill the directory must hold a loadable checkpoint (or none
// yet) and only complete sample grids, never a half-written file under a final name; and the
// run finished through all the kills must equal an uninterrupted one bit for bit.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/cli_runner.hpp"
#include "support/data_files.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/data/safetensors.hpp"

namespace fs = std::filesystem;
using namespace softdiff;
using namespace softdiff::test;

namespace {

/// Runs `softdiff <args>` and kills it with SIGKILL after `delay`; returns its exit status, or -1
/// when the kill landed.
int run_and_kill(const std::string& args, std::chrono::milliseconds delay) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    const std::string cmd = "exec " + q(tool_path) + " " + args;  // exec: the kill reaches the tool itself
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < until) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? -1 : (WIFEXITED(status) ? WEXITSTATUS(status) : 128);
}

/// Every file under a final name in `dir` is complete: the checkpoint parses, every grid decodes.
void check_directory(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    const fs::path p = e.path();
    INFO(p.string());
    if (p.filename() == "checkpoint.safetensors") {
      CHECK_NOTHROW(data::read_safetensors(p));
    } else if (p.extension() == ".png") {
      CHECK_NOTHROW(data::read_png<float>(p));
    }
  }
}

}  // namespace

TEST_CASE("cli train: SIGKILL at any moment leaves a loadable checkpoint, and resuming is exact", "[cli][train][kill]") {
  REQUIRE(fs::exists(tool_path));
  temp_dir dir("cli-kill");
  batch<float> x(shape4{16, 1, 8, 8});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  data::write_npy(dir / "x.npy", x);
  const std::string common = " --data " + q(dir / "x.npy") +
                             " --steps 40 --base-channels 8 --channel-mult 1,2 --batch 4 --warmup 2"
                             " --checkpoint-every 1 --sample-every 3 --sample-count 4 --sample-steps 2";

  const result whole = run_tool(dir, "train --out " + q(dir / "whole") + common);
  INFO(whole.err);
  REQUIRE(whole.status == 0);

  // Kills from 20 ms on, 23 ms apart: the first land while the data load, the later ones while
  // steps run and files are written, until a run finishes before its kill.
  int kills = 0, status = -1;
  for (int k = 0; status != 0 && k < 400; ++k) {
    status = run_and_kill("train --out " + q(dir / "killed") + common, std::chrono::milliseconds(20 + 23 * k));
    REQUIRE((status == -1 || status == 0));
    if (status == -1) ++kills;
    if (fs::exists(dir / "killed")) check_directory(dir / "killed");
  }
  INFO("runs killed: " << kills);
  REQUIRE(status == 0);
  CHECK(kills >= 3);

  const data::safetensors_file a = data::read_safetensors(dir / "whole" / "checkpoint.safetensors");
  const data::safetensors_file b = data::read_safetensors(dir / "killed" / "checkpoint.safetensors");
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    INFO(name);
    REQUIRE(b.contains(name));
    CHECK(t.bytes == b.at(name).bytes);  // weights, Adam moments and EMA: bit for bit
  }
  CHECK(nlohmann::json::parse(a.metadata.at("softdiff"))["step"] == nlohmann::json::parse(b.metadata.at("softdiff"))["step"]);
  // no temporary survives a finished run in the directory
  for (const auto& e : fs::directory_iterator(dir / "killed"))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
}
