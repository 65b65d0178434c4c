// End-to-end tests of the image2gps program: training resumes exactly after a kill and after
// Ctrl-C, a NaN loss stops cleanly, and every kind of bad input gives a one-line error that
// names the file, with exit status 1. They run the real binary on a tiny synthetic dataset.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "apps/image2gps/checkpoint.h"
#include "apps/image2gps/image_io.h"
#include "apps/image2gps/metadata.h"
#include "apps/image2gps/synthetic_world.h"
#include "tests/apps/data_test_util.h"

namespace {

using i2g_test::TempDir;
namespace fs = std::filesystem;

const std::string kBinary = std::string(ENGINE_BINARY_DIR) + "/apps/image2gps";

struct RunResult {
  int status = -1;  // exit code, or 128 + signal
  std::string out, err;
};

// Starts image2gps with `args`, stdout/stderr redirected to files; returns its pid.
pid_t spawn(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
  pid_t pid = fork();
  if (pid == 0) {
    freopen(out.c_str(), "w", stdout);
    freopen(err.c_str(), "w", stderr);
    std::vector<char*> argv{const_cast<char*>(kBinary.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(kBinary.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int wait_status(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

RunResult run(const std::vector<std::string>& args, const TempDir& tmp) {
  RunResult r;
  std::string out = tmp.file("stdout.txt"), err = tmp.file("stderr.txt");
  r.status = wait_status(spawn(args, out, err));
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// A tiny dataset: `n` rendered 32x32 views split into train/ and val/ (3:1).
void make_dataset(const fs::path& dir, int n) {
  i2g::World world = i2g::make_world(3);
  auto views = i2g::sample_views(world, n, 4);
  std::vector<i2g::GeoRecord> train, val;
  for (int i = 0; i < n; ++i) {
    std::string split = i % 4 == 3 ? "val" : "train";
    fs::create_directories(dir / split);
    std::string name = "v" + std::to_string(i) + ".png";
    i2g::RgbImage px = i2g::render_view(world, views[i].pose, 32, 32);
    i2g::Image img(px.width, px.height);
    img.rgb = px.pixels;
    i2g::save_png((dir / split / name).string(), img);
    (split == "val" ? val : train).push_back({name, views[i].latitude_deg, views[i].longitude_deg});
  }
  i2g::write_metadata_csv((dir / "train" / "metadata.csv").string(), train);
  i2g::write_metadata_csv((dir / "val" / "metadata.csv").string(), val);
}

std::vector<std::string> train_args(const fs::path& data, const fs::path& out, int epochs) {
  return {"train", "--data", data.string(), "--out", out.string(), "--arch", "small_cnn",
          "--image-size", "32", "--epochs", std::to_string(epochs), "--batch-size", "4",
          "--lr", "3e-3", "--threads", "1", "--workers", "1", "--device", "cpu"};
}

// Every model tensor of two checkpoints is bit-identical.
void expect_same_model(const std::string& a, const std::string& b) {
  i2g::Checkpoint ca = i2g::read_checkpoint(a), cb = i2g::read_checkpoint(b);
  int compared = 0;
  for (auto& [k, t] : ca.tensors) {
    if (k.rfind("model.", 0) != 0) continue;
    ASSERT_TRUE(cb.tensors.count(k)) << k;
    EXPECT_EQ(t.to_vector(), cb.tensors.at(k).to_vector()) << k;
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

int log_lines(const fs::path& log) {
  std::ifstream f(log);
  int n = 0;
  std::string line;
  while (std::getline(f, line)) n += !line.empty();
  return n;
}

class Image2gpsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kBinary)) GTEST_SKIP() << kBinary << " is not built";
  }
};

TEST_F(Image2gpsCli, ResumeAfterKillMatchesAnUninterruptedRun) {
  TempDir tmp;
  make_dataset(tmp.path() / "data", 48);
  RunResult ref = run(train_args(tmp.path() / "data", tmp.path() / "ref", 3), tmp);
  ASSERT_EQ(ref.status, 0) << ref.err;

  // Kill -9 as soon as the first epoch's checkpoint exists, then resume.
  const fs::path run_dir = tmp.path() / "killed";
  pid_t pid = spawn(train_args(tmp.path() / "data", run_dir, 3), tmp.file("o"), tmp.file("e"));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(run_dir / "last.ckpt") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  EXPECT_EQ(wait_status(pid), 128 + SIGKILL) << "the run finished before it could be killed";
  ASSERT_TRUE(fs::exists(run_dir / "last.ckpt"));

  RunResult res = run({"train", "--resume", run_dir.string()}, tmp);
  ASSERT_EQ(res.status, 0) << res.err;
  EXPECT_EQ(log_lines(run_dir / "log.jsonl"), 3);
  expect_same_model((tmp.path() / "ref" / "last.ckpt").string(), (run_dir / "last.ckpt").string());
  expect_same_model((tmp.path() / "ref" / "best.ckpt").string(), (run_dir / "best.ckpt").string());
}

TEST_F(Image2gpsCli, CtrlCSavesMidEpochAndResumesExactly) {
  TempDir tmp;
  make_dataset(tmp.path() / "data", 48);
  RunResult ref = run(train_args(tmp.path() / "data", tmp.path() / "ref", 2), tmp);
  ASSERT_EQ(ref.status, 0) << ref.err;

  const fs::path run_dir = tmp.path() / "interrupted";
  pid_t pid = spawn(train_args(tmp.path() / "data", run_dir, 2), tmp.file("o"), tmp.file("e"));
  // Interrupt during the second epoch (after the first is logged).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (log_lines(run_dir / "log.jsonl") < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGINT);
  ASSERT_EQ(wait_status(pid), 0) << slurp(tmp.file("e"));
  i2g::Checkpoint mid = i2g::read_checkpoint((run_dir / "last.ckpt").string());
  EXPECT_EQ(mid.get("epoch"), "1");
  EXPECT_NE(slurp(tmp.file("e")).find("interrupted"), std::string::npos);

  RunResult res = run({"train", "--resume", run_dir.string()}, tmp);
  ASSERT_EQ(res.status, 0) << res.err;
  expect_same_model((tmp.path() / "ref" / "last.ckpt").string(), (run_dir / "last.ckpt").string());
}

TEST_F(Image2gpsCli, NanLossStopsWithAMessage) {
  TempDir tmp;
  make_dataset(tmp.path() / "data", 24);
  auto args = train_args(tmp.path() / "data", tmp.path() / "run", 2);
  *(std::find(args.begin(), args.end(), "--lr") + 1) = "1e30";
  args.insert(args.end(), {"--optimizer", "sgd", "--momentum", "0"});
  RunResult r = run(args, tmp);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("loss became"), std::string::npos) << r.err;
}

// --profile N: steps 2..N+1 timed op by op; the table on stderr and in profile.txt, the trace
// in profile.trace.json; profiling changes nothing in the training itself (same model, bit for bit).
TEST_F(Image2gpsCli, ProfileWritesATableAndATraceAndChangesNothing) {
  TempDir tmp;
  make_dataset(tmp.path() / "data", 24);  // 18 training views: 4 steps of 4 per epoch
  RunResult plain = run(train_args(tmp.path() / "data", tmp.path() / "plain", 1), tmp);
  ASSERT_EQ(plain.status, 0) << plain.err;
  auto args = train_args(tmp.path() / "data", tmp.path() / "run", 1);
  args.insert(args.end(), {"--profile", "2"});
  RunResult r = run(args, tmp);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("2 training steps on cpu, op by op"), std::string::npos) << r.err;
  const std::string table = slurp((tmp.path() / "run" / "profile.txt").string());
  // small_cnn's ops, each in both phases, and the optimizer's update once per step.
  for (const char* row : {"conv2d                       forward", "conv2d                       backward",
                          "adamw_step                   optimizer       2 "})
    EXPECT_NE(table.find(row), std::string::npos) << row << "\n" << table;
  const std::string trace = slurp((tmp.path() / "run" / "profile.trace.json").string());
  EXPECT_EQ(trace.rfind("{\"displayTimeUnit\"", 0), 0u);
  EXPECT_NE(trace.find("\"name\": \"adamw_step\""), std::string::npos);
  expect_same_model((tmp.path() / "plain" / "last.ckpt").string(),
                    (tmp.path() / "run" / "last.ckpt").string());
}

// One line on stderr, starting "image2gps: error:", naming `name`.
void expect_one_line_error(const RunResult& r, const std::string& name) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(r.err.rfind("image2gps: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
}

// --kernels, --tf32, --cudnn-benchmark and --cudnn-nondeterministic sit beside every --device:
// each such subcommand's --help lists them, a wrong choice is refused before anything runs, and
// on the CPU they are accepted and change nothing (the same training run, bit for bit).
TEST_F(Image2gpsCli, GpuOptionsSitBesideEveryDeviceOption) {
  TempDir tmp;
  for (const char* sub : {"train", "grid", "eval", "export", "predict", "forward", "demo"}) {
    RunResult h = run({sub, "--help"}, tmp);
    EXPECT_EQ(h.status, 0) << sub << ": " << h.err;
    for (const char* opt :
         {"--device", "--kernels", "--tf32", "--cudnn-benchmark", "--cudnn-nondeterministic"})
      EXPECT_NE(h.out.find(opt), std::string::npos) << sub << " --help lacks " << opt;
  }
  RunResult bad = run({"forward", "--arch", "resnet18", "--kernels", "fastest", "x.png"}, tmp);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("--kernels"), std::string::npos) << bad.err;

  const fs::path data = tmp.path() / "data";
  make_dataset(data, 16);
  RunResult plain = run(train_args(data, tmp.path() / "plain", 1), tmp);
  ASSERT_EQ(plain.status, 0) << plain.err;
  std::vector<std::string> args = train_args(data, tmp.path() / "flags", 1);
  args.insert(args.end(),
              {"--kernels", "ours", "--tf32", "--cudnn-benchmark", "--cudnn-nondeterministic"});
  RunResult flags = run(args, tmp);
  ASSERT_EQ(flags.status, 0) << flags.err;
  expect_same_model((tmp.path() / "plain" / "best.ckpt").string(),
                    (tmp.path() / "flags" / "best.ckpt").string());
}

TEST_F(Image2gpsCli, BadInputsGiveOneLineErrors) {
  TempDir tmp;
  const fs::path data = tmp.path() / "data";
  make_dataset(data, 24);
  RunResult ok = run(train_args(data, tmp.path() / "run", 1), tmp);
  ASSERT_EQ(ok.status, 0) << ok.err;
  const std::string best = (tmp.path() / "run" / "best.ckpt").string();

  // A truncated checkpoint.
  auto bytes = i2g_test::read_bytes(best);
  const std::string cut = tmp.file("cut.ckpt");
  i2g_test::write_bytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 2));
  expect_one_line_error(run({"eval", "--data", (data / "val").string(), "--ckpt", cut}, tmp),
                        "cut.ckpt");

  // A CSV row with a non-numeric coordinate: the error names the file and the line.
  fs::create_directories(tmp.path() / "badcsv");
  fs::copy(data / "val" / "v3.png", tmp.path() / "badcsv" / "v3.png");
  std::ofstream(tmp.file("badcsv/metadata.csv")) << "image_file,Latitude,Longitude\nv3.png,north,-75.19\n";
  RunResult csv = run({"eval", "--data", tmp.file("badcsv"), "--ckpt", best}, tmp);
  expect_one_line_error(csv, "metadata.csv");
  EXPECT_NE(csv.err.find("metadata.csv:2"), std::string::npos) << csv.err;  // file:line

  // A missing image file.
  fs::create_directories(tmp.path() / "missing");
  std::ofstream(tmp.file("missing/metadata.csv")) << "image_file,Latitude,Longitude\nnope.png,39.95,-75.19\n";
  expect_one_line_error(run({"eval", "--data", tmp.file("missing"), "--ckpt", best}, tmp), "nope.png");

  // A zero-byte and a corrupt image: an error naming it, or skipped with --skip-bad.
  fs::create_directories(tmp.path() / "corrupt");
  fs::copy(data / "val" / "v3.png", tmp.path() / "corrupt" / "good.png");
  std::ofstream(tmp.file("corrupt/empty.png")).flush();
  i2g_test::write_bytes(tmp.file("corrupt/junk.png"), std::vector<uint8_t>(300, 0x42));
  std::ofstream(tmp.file("corrupt/metadata.csv"))
      << "image_file,Latitude,Longitude\ngood.png,39.95,-75.19\nempty.png,39.95,-75.19\n"
      << "junk.png,39.95,-75.19\n";
  expect_one_line_error(run({"eval", "--data", tmp.file("corrupt"), "--ckpt", best, "--knn", "0"}, tmp),
                        "empty.png");
  RunResult skip = run({"eval", "--data", tmp.file("corrupt"), "--ckpt", best, "--knn", "0",
                        "--skip-bad"}, tmp);
  EXPECT_EQ(skip.status, 0) << skip.err;
  EXPECT_NE(skip.out.find("1 images"), std::string::npos) << skip.out;

  // A bundle that is truncated, and a checkpoint given where a bundle is expected.
  RunResult ex = run({"export", (tmp.path() / "run").string(), "--out", tmp.file("m.i2g")}, tmp);
  ASSERT_EQ(ex.status, 0) << ex.err;
  auto bb = i2g_test::read_bytes(tmp.file("m.i2g"));
  i2g_test::write_bytes(tmp.file("cut.i2g"), std::vector<uint8_t>(bb.begin(), bb.end() - 100));
  const std::string img = (data / "val" / "v3.png").string();
  expect_one_line_error(run({"predict", "--bundle", tmp.file("cut.i2g"), img}, tmp), "cut.i2g");
  expect_one_line_error(run({"predict", "--bundle", best, img}, tmp), "best.ckpt");
  RunResult pred = run({"predict", "--bundle", tmp.file("m.i2g"), img}, tmp);
  EXPECT_EQ(pred.status, 0) << pred.err;
  EXPECT_EQ(pred.out.rfind("image,latitude,longitude\n", 0), 0u) << pred.out;

  // Weights of another architecture.
  expect_one_line_error(run({"forward", "--arch", "resnet18", "--weights", best, img}, tmp),
                        "best.ckpt");

  // Refusing to overwrite a finished run; nothing in it changes.
  auto before = i2g_test::read_bytes(best);
  expect_one_line_error(run(train_args(data, tmp.path() / "run", 1), tmp), "--resume");
  EXPECT_EQ(i2g_test::read_bytes(best), before);
}

}  // namespace
