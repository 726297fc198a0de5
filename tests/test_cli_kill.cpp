// Crash-safe training: `softdiff train` is killed with SIGKILL again and again, at moments spread
// over its whole run (loading, training, writing a checkpoint or a sample grid), each time resumed
// in the same directory. After every kill the directory must hold a loadable checkpoint (or none
// yet) and only complete sample grids, never a half-written file under a final name; and the
// run finished through all the kills must equal an uninterrupted one bit for bit.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/cli_runner.hpp"
#include "support/data_files.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/png.hpp"
#include "softdiff/data/safetensors.hpp"
#include "softdiff/nn/classifier.hpp"
#include "softdiff/schedule/tabulated.hpp"

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
    const std::string cmd = poison_env() + "exec " + q(tool_path) + " " + args;  // exec: the kill reaches the tool itself
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

/// n varied h x w images in [-1, 1] as a float .npy file.
fs::path write_images(const temp_dir& dir, const std::string& name, std::size_t n, std::size_t side, double phase) {
  batch<float> x(shape4{n, 1, side, side});
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t p = 0; p < side * side; ++p)
      x.data()[i * side * side + p] = static_cast<float>(
          0.8 * std::sin(0.37 * static_cast<double>(p) * (1.0 + 0.05 * static_cast<double>(i % 7)) + phase + 0.9 * i));
  data::write_npy(dir / name, x);
  return dir / name;
}

/// The rows of a CSV file; a file that does not end in a newline is incomplete.

/// Every output of `softdiff schedule` or `softdiff eval` under a final name is complete: JSON
/// parses (a schedule loads), PNGs decode, CSVs end in a newline with every row as wide as the
/// header; no temporary is left once `finished`.
void check_outputs(const fs::path& dir, bool finished) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const fs::path p = e.path();
    INFO(p.string());
    const std::string name = p.filename().string();
    if (name.find(".tmp.") != std::string::npos) {
      CHECK_FALSE(finished);
    } else if (p.extension() == ".png") {
      CHECK_NOTHROW(data::read_png<float>(p));
    } else if (p.extension() == ".json") {
      CHECK_NOTHROW(nlohmann::json::parse(read_text(p)));
      if (name == "s.json") CHECK_NOTHROW(schedule::tabulated::load_json(p));
    } else if (p.extension() == ".csv") {
      const std::string text = read_text(p);
      REQUIRE((text.empty() || text.back() == '\n'));  // the last row complete
      const auto rows = read_csv(p);
      REQUIRE_FALSE(rows.empty());
      for (const auto& r : rows) CHECK(r.size() == rows[0].size());
    }
  }
}

/// Runs `args` (writing into `out`) uninterrupted and timed, then again and again in `killed`
/// with SIGKILL at delays spread over that time, checking the outputs after every kill, until a
/// run completes. Returns the number of runs killed.
int kill_repeatedly(const temp_dir& dir, const std::string& args, const fs::path& whole, const fs::path& killed) {
  const auto t0 = std::chrono::steady_clock::now();
  const result r = run_tool(dir, args + " " + whole.string());
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  const auto step = std::max(std::chrono::milliseconds(15), took / 15);
  int kills = 0, status = -1;
  for (int k = 0; status != 0 && k < 200; ++k) {
    status = run_and_kill(args + " " + killed.string(), std::chrono::milliseconds(10) + step * k);
    REQUIRE((status == -1 || status == 0));
    if (status == -1) ++kills;
    const fs::path where = fs::is_directory(killed) ? killed : killed.parent_path();
    check_outputs(where, status == 0);
  }
  REQUIRE(status == 0);
  return kills;
}

}  // namespace

TEST_CASE("cli schedule: SIGKILL at any moment never leaves a half-written schedule or plot", "[cli][schedule][kill]") {
  REQUIRE(fs::exists(tool_path));
  temp_dir dir("cli-kill-schedule");
  const fs::path data = write_images(dir, "x.npy", 300, 16, 0.0);
  fs::create_directories(dir / "whole");
  fs::create_directories(dir / "killed");
  const std::string args = "schedule --data " + q(data) + " --slice 300 --levels 40 --target 8 --metric sliced --out";
  const int kills = kill_repeatedly(dir, args, dir / "whole" / "s.json", dir / "killed" / "s.json");
  INFO("runs killed: " << kills);
  CHECK(kills >= 3);
  // the schedule of the run finished through the kills is the uninterrupted one
  CHECK(read_text(dir / "killed" / "s.json") == read_text(dir / "whole" / "s.json"));
  CHECK(read_bytes(dir / "killed" / "s.png") == read_bytes(dir / "whole" / "s.png"));
}

TEST_CASE("cli eval: SIGKILL at any moment never leaves a half-written table, summary or image", "[cli][eval][kill]") {
  REQUIRE(fs::exists(tool_path));
  temp_dir dir("cli-kill-eval");
  const fs::path train = write_images(dir, "train.npy", 48, 8, 0.0);
  const fs::path held_out = write_images(dir, "test.npy", 30, 8, 0.5);
  const result t = run_tool(dir, "train --out " + q(dir / "run") + " --steps 2 --data " + q(train) +
                                     " --base-channels 8 --channel-mult 1,2 --batch 4 --warmup 2 --sample-every 0");
  INFO(t.out << t.err);
  REQUIRE(t.status == 0);
  nn::classifier_config c;
  c.height = c.width = 8;
  c.channels1 = c.channels2 = c.channels3 = c.channels4 = 8;
  c.groups = 4;
  c.feature_count = 6;
  nn::classifier<float>(c, 3).save(dir / "clf.safetensors", {{"test", true}});
  const std::string args = "eval --ckpt " + q(dir / "run" / "checkpoint.safetensors") + " --test-data " + q(held_out) +
                           " --classifier " + q(dir / "clf.safetensors") +
                           " --count 12 --reference 30 --sampler naive,momentum --steps 2,3 --seeds 1,2 --out";
  const int kills = kill_repeatedly(dir, args, dir / "whole", dir / "killed");
  INFO("runs killed: " << kills);
  CHECK(kills >= 3);
  // the finished run's metrics are the uninterrupted run's (all but the timing column)
  const auto a = read_csv(dir / "whole" / "metrics.csv"), b = read_csv(dir / "killed" / "metrics.csv");
  REQUIRE(a.size() == b.size());
  REQUIRE(a[0].back() == "seconds");
  for (std::size_t i = 0; i < a.size(); ++i)
    CHECK(std::vector<std::string>(a[i].begin(), a[i].end() - 1) == std::vector<std::string>(b[i].begin(), b[i].end() - 1));
}

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
