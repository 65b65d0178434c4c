// bench/cuda/conv2d_bench.cu — validates and times every version of the implicit-GEMM
// convolution lab (kernels/cuda/conv2d.cu, conv2d_tf32.cu) on ResNet-50 layers at batch 64,
// next to cuDNN with FMA math (fp32) and with TF32 tensor cores, in the same run.
//
//   conv2d_bench [--shape res2_3x3|res2_1x1|res4_3x3|stem|res3_3x3s2|all]
//                [--op fwd|dgrad|wgrad|all]
//                [--version V] [--batch 64] [--reps 30] [--json FILE] [--no-check] [--no-cudnn]
//
// Per layer: inputs uniform in [-1, 1); each version (and cuDNN) runs once on NaN-poisoned
// outputs and is checked on a random sample of its outputs (2048 of y and dx, 256 of dw, all of
// dbias) against float64 direct sums computed on the host (sample: the full float64 reference
// of a batch-64 layer would take minutes), with the per-element bound of
// tests/cuda_labs/conv2d_test.cpp (summation-error bound from sum |a b|; TF32's 2^-10
// operand rounding). Then each is timed: median of --reps runs after two warm-ups, the L2
// flushed before each (bench_common.cuh); v3 and v4 are timed a second time ("again") so the
// table shows the run-to-run noise. cuDNN runs through the engine's wrappers (conv2d_ops.h:
// heuristic algorithm choice, deterministic backward algorithms preferred), TF32 toggled with
// kernels::cuda::set_tf32; their host-side algorithm query overlaps the L2 flush.
// Columns: TFLOP/s counts 2*N*P*Q*K*R*S*C per pass (the stem's data gradient, dilation 1 but
// only 3 columns wide, still multiplies most of a 64-wide tile of zeros; strided layers of
// dilation 1 run one GEMM per stride phase, which skips the stride^2 taps that reach nothing);
// the floor is max(bytes / 2.6 TB/s, FLOPs / 67 TFLOP/s fp32 or
// 495 TF32); "vs cuDNN" = cuDNN's time / ours (> 1: we are faster) against cuDNN of the same
// math. Exit: 0 when everything validated, 1 otherwise, 77 without a GPU. Takes ~30 s on an
// H100 (the naive v1 dominates; --version 3 or 4 for a quick look). v5 is v4 with operands
// rounded once in shared memory and ldmatrix fragments: the same bits, so its rows show what
// the fewer instructions per mma.sync are worth; v6 is v5 with 64x64 warp tiles (the same bits
// again: what a third fewer fragment reads and half the warps are worth).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/cuda/bench_common.cuh"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/conv2d_ops.h"
#include "kernels/cuda/runtime.h"

namespace {

namespace kc = kernels::cuda;
using kc::Conv2dLabShape;

struct Layer {
  const char* name;
  int c, k, hw, r, stride, pad;
};
const Layer kLayers[] = {
    {"res2_3x3", 64, 64, 56, 3, 1, 1},    // conv2 3x3 of ResNet-50's first stage
    {"res2_1x1", 256, 64, 56, 1, 1, 0},   // its 1x1 reduce 256 -> 64
    {"res4_3x3", 256, 256, 14, 3, 1, 1},  // conv2 3x3 of the third stage
    {"stem", 3, 64, 224, 7, 2, 3},        // 7x7 stride-2 stem on RGB
    {"res3_3x3s2", 128, 128, 56, 3, 2, 1},  // stage 2's first 3x3, stride 2: a phased dgrad
};

enum class Op { Fwd, Dgrad, Wgrad };
const char* op_name(Op op) {
  return op == Op::Fwd ? "forward" : op == Op::Dgrad ? "backward_data" : "backward_weight";
}

struct Row {
  std::string op, shape, label, math;
  int version = 0;  // -1: cuDNN
  double ms = 0, min_ms = 0, flops = 0, bytes = 0, cudnn_ms = 0;
  bool valid = true;
  bool ran = true;  // false: a cuDNN row where cuDNN had no algorithm (nothing was computed)
  double peak() const {
    return math == "tf32" ? bench::kPeakTf32FlopPerS : bench::kPeakFp32FlopPerS;
  }
  double floor_ms() const {
    return 1e3 * std::max(bytes / bench::peak_bytes_per_s(), flops / peak());
  }
};

// ---- the float64 sample reference -------------------------------------------------------------

// One checked output element: its index, the float64 value and the allowed error.
struct Sample {
  size_t index;
  double value, magnitude;  // magnitude = sum |a b| of the element's sum
  int64_t length;           // number of terms
};

// f(i) for i in [0, n) on all host cores.
template <class F>
void parallel_for(size_t n, F&& f) {
  const unsigned t = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (unsigned id = 0; id < t; ++id)
    pool.emplace_back([&, id] {
      for (size_t i = id; i < n; i += t) f(i);
    });
  for (auto& th : pool) th.join();
}

std::vector<size_t> pick(size_t total, size_t count, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<size_t> d(0, total - 1);
  std::vector<size_t> v(std::min(count, total));
  for (auto& i : v) i = d(gen);
  return v;
}

struct Host {
  const Conv2dLabShape& sh;
  const std::vector<float>&x, &w, &b, &dy;
  int p, q;
  Sample y_at(size_t i) const {  // y[n, p, q, k]
    const int k = int(i % sh.k), pix = int(i / sh.k);
    const int qq = pix % q, pp = (pix / q) % p, n = pix / (q * p);
    double v = b[k], m = std::fabs(b[k]);
    for (int r = 0; r < sh.r; ++r)
      for (int s = 0; s < sh.s; ++s) {
        const int ih = pp * sh.stride_h - sh.pad_h + r * sh.dil_h;
        const int iw = qq * sh.stride_w - sh.pad_w + s * sh.dil_w;
        if (ih < 0 || ih >= sh.h || iw < 0 || iw >= sh.w) continue;
        for (int c = 0; c < sh.c; ++c) {
          const double a = x[((size_t(n) * sh.h + ih) * sh.w + iw) * sh.c + c];
          const double ww = w[((size_t(k) * sh.r + r) * sh.s + s) * sh.c + c];
          v += a * ww, m += std::fabs(a * ww);
        }
      }
    return {i, v, m, int64_t(sh.r) * sh.s * sh.c + 1};
  }
  Sample dx_at(size_t i) const {  // dx[n, h, w, c]
    const int c = int(i % sh.c), pix = int(i / sh.c);
    const int wx = pix % sh.w, h = (pix / sh.w) % sh.h, n = pix / (sh.w * sh.h);
    double v = 0, m = 0;
    for (int r = 0; r < sh.r; ++r)
      for (int s = 0; s < sh.s; ++s) {
        const int th = h + sh.pad_h - r * sh.dil_h, tw = wx + sh.pad_w - s * sh.dil_w;
        if (th < 0 || tw < 0 || th % sh.stride_h || tw % sh.stride_w) continue;
        const int pp = th / sh.stride_h, qq = tw / sh.stride_w;
        if (pp >= p || qq >= q) continue;
        for (int k = 0; k < sh.k; ++k) {
          const double a = dy[((size_t(n) * p + pp) * q + qq) * sh.k + k];
          const double ww = w[((size_t(k) * sh.r + r) * sh.s + s) * sh.c + c];
          v += a * ww, m += std::fabs(a * ww);
        }
      }
    return {i, v, m, int64_t(sh.r) * sh.s * sh.k};
  }
  Sample dw_at(size_t i) const {  // dw[k, r, s, c]
    const int c = int(i % sh.c), s = int(i / sh.c) % sh.s;
    const int r = int(i / (size_t(sh.c) * sh.s)) % sh.r;
    const int k = int(i / (size_t(sh.c) * sh.s * sh.r));
    double v = 0, m = 0;
    for (int n = 0; n < sh.n; ++n)
      for (int pp = 0; pp < p; ++pp) {
        const int ih = pp * sh.stride_h - sh.pad_h + r * sh.dil_h;
        if (ih < 0 || ih >= sh.h) continue;
        for (int qq = 0; qq < q; ++qq) {
          const int iw = qq * sh.stride_w - sh.pad_w + s * sh.dil_w;
          if (iw < 0 || iw >= sh.w) continue;
          const double a = dy[((size_t(n) * p + pp) * q + qq) * sh.k + k];
          const double xx = x[((size_t(n) * sh.h + ih) * sh.w + iw) * sh.c + c];
          v += a * xx, m += std::fabs(a * xx);
        }
      }
    return {i, v, m, int64_t(sh.n) * p * q};
  }
  Sample db_at(size_t k) const {
    double v = 0, m = 0;
    for (size_t j = k; j < dy.size(); j += sh.k) v += dy[j], m += std::fabs(dy[j]);
    return {k, v, m, int64_t(dy.size() / sh.k)};
  }
};

template <class F>
std::vector<Sample> samples(const std::vector<size_t>& idx, F&& at) {
  std::vector<Sample> out(idx.size());
  parallel_for(idx.size(), [&](size_t j) { out[j] = at(idx[j]); });
  return out;
}

// The bound of tests/cuda_labs/conv2d_test.cpp: fp32 2 (L+2) 2^-24 S; TF32
// (2^-10 + 2^-21 + (L+2) 2^-23) S.
bool check(const char* what, const std::vector<float>& got, const std::vector<Sample>& ref,
           bool tf32) {
  size_t bad = 0;
  const Sample* worst = nullptr;
  double worst_ratio = 0;
  for (const Sample& s : ref) {
    const double per = tf32 ? std::ldexp(1.0, -10) + std::ldexp(1.0, -21) +
                                  double(s.length + 2) * std::ldexp(1.0, -23)
                            : 2.0 * double(s.length + 2) * std::ldexp(1.0, -24);
    const double bound = per * s.magnitude + 1e-30, err = std::fabs(double(got[s.index]) - s.value);
    if (!(err <= bound)) {
      ++bad;
      const double ratio = std::isnan(err) ? 1e300 : err / bound;
      if (ratio > worst_ratio) worst_ratio = ratio, worst = &s;
    }
  }
  if (bad)
    std::printf("  FAIL %s: %zu of %zu sampled elements off; worst [%zu] got %.8g expected %.8g\n",
                what, bad, ref.size(), worst->index, double(got[worst->index]), worst->value);
  return bad == 0;
}

// ---- output ----------------------------------------------------------------------------------

void print_rows(const std::vector<Row>& rows) {
  std::printf("%-16s %-10s %-12s %10s %10s %9s %8s %9s %s\n", "op", "layer", "version",
              "median ms", "min ms", "TFLOP/s", "% floor", "vs cuDNN", "");
  for (const Row& r : rows) {
    std::printf("%-16s %-10s %-12s %10.4f %10.4f %9.2f %7.1f%%", r.op.c_str(), r.shape.c_str(),
                r.label.c_str(), r.ms, r.min_ms, r.flops / (r.ms * 1e-3) / 1e12,
                100.0 * r.floor_ms() / r.ms);
    if (r.cudnn_ms > 0) std::printf(" %8.2fx", r.cudnn_ms / r.ms);
    std::printf("%s\n", r.valid ? "" : "  INVALID");
  }
}

void write_json(const std::string& path, const std::vector<Row>& rows) {
  if (path.empty()) return;
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  std::fprintf(f, "{\n  \"family\": \"conv2d\",\n  \"device\": \"%s\",\n  \"date\": \"%s\",\n",
               bench::device_name().c_str(), date);
  std::fprintf(f, "  \"copy_gbps\": %.1f,\n", bench::peak_bytes_per_s() / 1e9);
  std::fprintf(f, "  \"rows\": [\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    std::fprintf(f,
                 "    {\"op\": \"%s\", \"shape\": \"%s\", \"label\": \"%s\", \"version\": %d, "
                 "\"math\": \"%s\", \"median_ms\": %.6f, \"min_ms\": %.6f, \"flops\": %.0f, "
                 "\"bytes\": %.0f, \"tflops\": %.4f, \"floor_ms\": %.6f, \"pct_floor\": %.2f, "
                 "\"cudnn_ms\": %.6f, \"vs_cudnn\": %.4f, \"valid\": %s}%s\n",
                 r.op.c_str(), r.shape.c_str(), r.label.c_str(), r.version, r.math.c_str(), r.ms,
                 r.min_ms, r.flops, r.bytes, r.flops / (r.ms * 1e-3) / 1e12, r.floor_ms(),
                 100.0 * r.floor_ms() / r.ms, r.cudnn_ms, r.cudnn_ms > 0 ? r.cudnn_ms / r.ms : 0.0,
                 r.valid ? "true" : "false", i + 1 < rows.size() ? "," : "");
  }
  std::fprintf(f, "  ]\n}\n");
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  bench::require_gpu("conv2d_bench");
  const std::string which = args.get("--shape", "all"), which_op = args.get("--op", "all");
  const int batch = args.get_int("--batch", 64), reps = args.get_int("--reps", 30);
  const bool validate = !args.has("--no-check"), cudnn = !args.has("--no-cudnn");
  const std::vector<int> versions = bench::versions(args, kc::kConv2dVersions);
  std::printf("conv2d_bench on %s: ResNet-50 layers, batch %d, NHWC float32\n",
              bench::device_line().c_str(), batch);

  cudaStream_t stream = kc::stream();  // the stream cuDNN's wrappers run on
  bench::L2Flusher flusher;
  std::vector<Row> rows;
  bool all_valid = true;
  for (const Layer& L : kLayers) {
    if (which != "all" && which != L.name) continue;
    Conv2dLabShape sh;
    sh.n = batch, sh.h = sh.w = L.hw, sh.c = L.c, sh.k = L.k, sh.r = sh.s = L.r;
    sh.stride_h = sh.stride_w = L.stride, sh.pad_h = sh.pad_w = L.pad;
    const int p = sh.p(), q = sh.q();
    const size_t nx = size_t(sh.n) * sh.h * sh.w * sh.c, ny = size_t(sh.n) * p * q * sh.k;
    const size_t nw = size_t(sh.k) * sh.r * sh.s * sh.c;
    const std::vector<float> x = bench::random_floats(nx, 1), w = bench::random_floats(nw, 2),
                             b = bench::random_floats(sh.k, 3), dy = bench::random_floats(ny, 4);
    bench::Buffer<float> d_x(nx), d_w(nw), d_b(sh.k), d_dy(ny), d_y(ny), d_dx(nx), d_dw(nw),
        d_db(sh.k);
    d_x.upload(x), d_w.upload(w), d_b.upload(b), d_dy.upload(dy);

    std::vector<Sample> ry, rdx, rdw, rdb;
    if (validate) {
      const Host host{sh, x, w, b, dy, p, q};
      ry = samples(pick(ny, 2048, 5), [&](size_t i) { return host.y_at(i); });
      rdx = samples(pick(nx, 2048, 6), [&](size_t i) { return host.dx_at(i); });
      rdw = samples(pick(nw, 256, 7), [&](size_t i) { return host.dw_at(i); });
      std::vector<size_t> all_k(sh.k);
      for (int k = 0; k < sh.k; ++k) all_k[k] = k;
      rdb = samples(all_k, [&](size_t k) { return host.db_at(k); });
    }
    kc::Conv2dShape vs;  // the same layer for the cuDNN wrappers
    vs.n = sh.n, vs.h = sh.h, vs.w = sh.w, vs.c = sh.c, vs.k = sh.k, vs.r = sh.r, vs.s = sh.s;
    vs.p = p, vs.q = q, vs.stride_h = vs.stride_w = L.stride, vs.pad_h = vs.pad_w = L.pad;
    const double flops = 2.0 * double(ny) * sh.r * sh.s * sh.c;

    for (Op op : {Op::Fwd, Op::Dgrad, Op::Wgrad}) {
      const char* short_name = op == Op::Fwd ? "fwd" : op == Op::Dgrad ? "dgrad" : "wgrad";
      if (which_op != "all" && which_op != short_name) continue;
      const double bytes = 4.0 * double(nx + nw + ny);  // two activations + the filter, each pass
      // One run of version v (v < 0: cuDNN) with or without the bias (validation only). The
      // cuDNN wrappers return false when cuDNN has no deterministic FMA (or TF32) algorithm for
      // the shape: nothing was computed, and the row says so instead of timing nothing.
      bool vendor_ran = true;
      auto run = [&](int v, bool with_bias, void* ws) {
        if (op == Op::Fwd) {
          if (v < 0)
            vendor_ran &= kc::conv2d_forward_vendor(vs, d_x.get(), d_w.get(),
                                                    with_bias ? d_b.get() : nullptr, d_y.get(),
                                                    kernels::DType::Float32);
          else
            kc::conv2d_forward(v, sh, d_x.get(), d_w.get(), with_bias ? d_b.get() : nullptr,
                               d_y.get(), stream);
        } else if (op == Op::Dgrad) {
          if (v < 0)
            vendor_ran &= kc::conv2d_backward_data_vendor(vs, d_dy.get(), d_w.get(), d_dx.get(),
                                                          kernels::DType::Float32);
          else
            kc::conv2d_backward_data(v, sh, d_dy.get(), d_w.get(), d_dx.get(), stream);
        } else {
          if (v < 0)
            vendor_ran &= kc::conv2d_backward_weight_vendor(vs, d_x.get(), d_dy.get(), d_dw.get(),
                                                            kernels::DType::Float32);
          else
            kc::conv2d_backward_weight(v, sh, d_x.get(), d_dy.get(), d_dw.get(),
                                       with_bias ? d_db.get() : nullptr, ws, stream);
        }
      };
      auto measure = [&](int v, bool tf32, const std::string& label, bool again) {
        kc::set_tf32(tf32);
        bench::Buffer<char> ws(v >= 0 && op == Op::Wgrad
                                   ? kc::conv2d_backward_weight_workspace(v, sh)
                                   : 0);
        Row row{op_name(op), L.name, label, tf32 ? "tf32" : "fp32", v};
        row.flops = flops, row.bytes = bytes;
        vendor_ran = true;
        if (validate && !again) {
          d_y.poison(), d_dx.poison(), d_dw.poison(), d_db.poison();
          run(v, true, ws.get());
          bench::ok(cudaStreamSynchronize(stream), "validation run");
          const std::string what = std::string(op_name(op)) + " " + label + " " + L.name;
          if (op == Op::Fwd) {
            row.valid = check(what.c_str(), d_y.download(), ry, tf32);
          } else if (op == Op::Dgrad) {
            row.valid = check(what.c_str(), d_dx.download(), rdx, tf32);
          } else {
            row.valid = check(what.c_str(), d_dw.download(), rdw, tf32);
            if (v >= 0) row.valid &= check((what + " dbias").c_str(), d_db.download(), rdb, false);
          }
          if (v >= 0) all_valid &= row.valid;  // cuDNN's own algorithms (FFT, Winograd) are
                                               // only reported against our bound
        }
        const bench::Timing t =
            bench::time_it([&] { run(v, false, ws.get()); }, stream, flusher, reps);
        row.ms = t.median_ms, row.min_ms = t.min_ms;
        kc::set_tf32(false);
        if (!vendor_ran) {  // nothing of cuDNN's ran: its time is of nothing, compare nothing
          row.label += " (no cuDNN algorithm)";
          row.ran = false;
          row.valid = false;
        }
        return row;
      };
      std::vector<Row> op_rows;
      double cudnn_ms[2] = {0, 0};  // fp32, tf32
      if (cudnn) {
        op_rows.push_back(measure(-1, false, "cuDNN fp32", false));
        op_rows.push_back(measure(-1, true, "cuDNN tf32", false));
        for (int m = 0; m < 2; ++m) cudnn_ms[m] = op_rows[m].ran ? op_rows[m].ms : 0;
      }
      for (int v : versions) {
        const bool tf32 = kc::conv2d_version_is_tf32(v);
        op_rows.push_back(measure(v, tf32, "v" + std::to_string(v == 0 ? 3 : v), false));
      }
      for (int v : versions) {  // the fastest ones once more: the run-to-run noise
        const int vv = v == 0 ? 3 : v;
        if (vv == 3 || vv == kc::kConv2dTf32Version)
          op_rows.push_back(measure(v, vv == kc::kConv2dTf32Version,
                                    "v" + std::to_string(vv) + " again", true));
      }
      for (Row& r : op_rows) r.cudnn_ms = r.version < 0 ? 0 : cudnn_ms[r.math == "tf32"];
      rows.insert(rows.end(), op_rows.begin(), op_rows.end());
    }
  }
  print_rows(rows);
  write_json(args.get("--json", ""), rows);
  if (!all_valid) std::printf("conv2d_bench: some versions FAILED validation\n");
  return all_valid ? 0 : 1;
}
