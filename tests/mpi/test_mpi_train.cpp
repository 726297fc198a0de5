// `mpirun -np N softdiff train` (docs/distributed.md): the checkpoint of 1, 2 and 3 processes is
// the same file bit for bit; a run resumes on another process count; a rank killed mid-run ends
// the job within seconds, naming the rank, and the last checkpoint is intact (resuming from it
// reproduces the uninterrupted run); ranks that disagree on the command line or lack the data
// stop with a message naming the rank. Needs mpirun (Open MPI); runs as root with Open MPI's
// allow-run-as-root variables and --oversubscribe, as CI does.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/cli_runner.hpp"
#include "support/data_files.hpp"
#include "softdiff/data/npy.hpp"
#include "softdiff/data/safetensors.hpp"

namespace fs = std::filesystem;
using namespace softdiff;
using namespace softdiff::test;
using Catch::Matchers::Contains;

namespace {

const std::string recipe =
    " --base-channels 8 --channel-mult 1,2 --batch 8 --warmup 2 --sample-every 0 --sample-count 4 --sample-steps 2";

/// `mpirun [--oversubscribe] <ranks...>`: Open MPI as root on a 2-core machine, one OpenMP
/// thread per rank, and the tests' NaN-filled heap in every rank.
std::string mpirun() {
  std::string cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 " +
                    std::string(SOFTDIFF_MPIRUN) + " --oversubscribe -x OMP_NUM_THREADS=1";
  const std::string env = poison_env();
  if (!env.empty()) cmd += " -x " + env.substr(0, env.size() - 1);
  return cmd;
}

/// `-np n softdiff train <args>`, one MPMD part of an mpirun line.
std::string ranks(int n, const std::string& args) { return " -np " + std::to_string(n) + " " + q(tool_path) + " train " + args; }

result run_shell(const temp_dir& dir, const std::string& cmd) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const int raw = std::system((cmd + " >" + q(out) + " 2>" + q(err)).c_str());
  result r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + (WIFSIGNALED(raw) ? WTERMSIG(raw) : 0);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

fs::path write_data(const temp_dir& dir) {
  batch<float> x(shape4{32, 1, 8, 8});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  data::write_npy(dir / "x.npy", x);
  return dir / "x.npy";
}

/// A checkpoint's bytes (weights, Adam moments, EMA and metadata: the whole file).
bytes checkpoint(const fs::path& run) { return read_bytes(run / "checkpoint.safetensors"); }

/// The pid of rank `rank` of a job writing to `out`, from /proc (its environment and command line).
pid_t find_rank(int rank, const fs::path& out) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream env(e.path() / "environ", std::ios::binary), cmd(e.path() / "cmdline", std::ios::binary);
    std::stringstream es, cs;
    es << env.rdbuf();
    cs << cmd.rdbuf();
    const std::string environ = std::string(1, '\0') + es.str(), cmdline = cs.str();
    if (cmdline.find(out.string()) != std::string::npos && cmdline.find("train") != std::string::npos &&
        (environ.find(std::string(1, '\0') + want + std::string(1, '\0')) != std::string::npos))
      return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

}  // namespace

TEST_CASE("mpirun: 1, 2 and 3 processes write the checkpoint of one process, bit for bit", "[mpi][train]") {
  REQUIRE(fs::exists(tool_path));
  temp_dir dir("mpi-equal");
  const fs::path data = write_data(dir);
  const std::string common = "--data " + q(data) + " --steps 6 --checkpoint-every 3" + recipe;
  const result one = run_tool(dir, "train --out " + q(dir / "one") + " " + common);
  INFO(one.err);
  REQUIRE(one.status == 0);
  for (int n : {1, 2, 3}) {
    const fs::path out = dir / ("np" + std::to_string(n));
    const result r = run_shell(dir, mpirun() + ranks(n, "--out " + q(out) + " " + common));
    INFO(n << " processes\n" << r.out << r.err);
    REQUIRE(r.status == 0);
    if (n > 1) CHECK(contains(r.err, "MPI, " + std::to_string(n) + " processes (data-parallel)"));
    CHECK(checkpoint(out) == checkpoint(dir / "one"));
    CHECK(fs::exists(out / "samples_step6.png"));  // rank 0 writes the grid
  }
}

TEST_CASE("mpirun: a run resumes on another number of processes", "[mpi][train]") {
  temp_dir dir("mpi-resume");
  const fs::path data = write_data(dir);
  const std::string common = "--data " + q(data) + recipe;
  REQUIRE(run_tool(dir, "train --out " + q(dir / "one") + " --steps 6 " + common).status == 0);
  result r = run_shell(dir, mpirun() + ranks(2, "--out " + q(dir / "moved") + " --steps 3 " + common));
  INFO(r.err);
  REQUIRE(r.status == 0);
  r = run_shell(dir, mpirun() + ranks(3, "--out " + q(dir / "moved") + " --steps 6 " + common));
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.err, "resuming at step 3"));
  CHECK(checkpoint(dir / "moved") == checkpoint(dir / "one"));
}

TEST_CASE("mpirun: a killed rank ends the job naming it, and the last checkpoint is intact", "[mpi][train][kill]") {
  temp_dir dir("mpi-kill");
  const fs::path data = write_data(dir), out = dir / "killed";
  const std::string common = "--data " + q(data) + recipe;
  const std::string cmd = mpirun() + ranks(2, "--out " + q(out) + " --steps 100000 --checkpoint-every 1 " + common) +
                          " >" + q(dir / "job.out") + " 2>" + q(dir / "job.err");
  const pid_t job = ::fork();
  REQUIRE(job >= 0);
  if (job == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // wait until training writes checkpoints, then kill rank 1
  pid_t victim = -1;
  for (int i = 0; i < 600 && victim < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (fs::exists(out / "checkpoint.safetensors")) victim = find_rank(1, out);
  }
  if (victim < 0) ::kill(job, SIGKILL);
  REQUIRE(victim > 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(::kill(victim, SIGKILL) == 0);
  int status = 0;
  bool ended = false;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30)) {
    if (::waitpid(job, &status, WNOHANG) == job) {
      ended = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!ended) {
    ::kill(job, SIGKILL);
    ::waitpid(job, &status, 0);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string err = read_text(dir / "job.err");
  INFO(err << "\nended after " << seconds << " s");
  REQUIRE(ended);
  CHECK(seconds < 10);
  CHECK_FALSE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(contains(err, "rank 1"));

  // The checkpoint left is complete, and resuming from it (one process) gives the uninterrupted run.
  const data::safetensors_file f = data::read_safetensors(out / "checkpoint.safetensors");
  const long step = nlohmann::json::parse(f.metadata.at("softdiff"))["step"].get<long>();
  REQUIRE(step >= 1);
  const std::string until = " --steps " + std::to_string(step + 2) + " ";
  REQUIRE(run_tool(dir, "train --out " + q(out) + until + common).status == 0);
  REQUIRE(run_tool(dir, "train --out " + q(dir / "whole") + until + common).status == 0);
  CHECK(checkpoint(out) == checkpoint(dir / "whole"));
}

TEST_CASE("mpirun: ranks that disagree, or lack the data, stop naming the rank", "[mpi][train]") {
  temp_dir dir("mpi-disagree");
  const fs::path data = write_data(dir);
  const std::string common = " --out " + q(dir / "run") + " --steps 2" + recipe;
  result r = run_shell(dir, mpirun() + ranks(1, "--data " + q(data) + " --lr 1e-3" + common) + " :" +
                                ranks(1, "--data " + q(data) + " --lr 2e-3" + common));
  INFO(r.out << r.err);
  CHECK(r.status != 0);
  CHECK(contains(r.err, "ranks disagree on the configuration (command line, data, checkpoint): rank 0 has 'command line:"));
  CHECK(contains(r.err, "rank 1 has 'command line:"));
  CHECK(contains(r.err, "--lr 2e-3"));
  CHECK_FALSE(fs::exists(dir / "run" / "checkpoint.safetensors"));

  r = run_shell(dir, mpirun() + ranks(1, "--data " + q(data) + common) + " :" +
                         ranks(1, "--data " + q(dir / "missing.npy") + common));
  INFO(r.out << r.err);
  CHECK(r.status != 0);
  CHECK(contains(r.err, "rank 1: "));
  CHECK(contains(r.err, (dir / "missing.npy").string()));

  r = run_shell(dir, mpirun() + ranks(2, "--data " + q(data) + " --out " + q(dir / "b6") + " --steps 2 --batch 6 "
                                             "--base-channels 8 --channel-mult 1,2"));
  INFO(r.out << r.err);
  CHECK(r.status != 0);
  CHECK(contains(r.err, "the global batch of 6 samples does not split into 4 equal replicas for 2 processes"));
}
