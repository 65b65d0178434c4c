// engine/autograd.h — reverse-mode automatic differentiation on a dynamic tape.
//
// Every differentiable op returns a tensor whose grad_fn is a Node: the op's name, one Edge
// per input (where that input's gradient goes), and a closure that maps the gradient of the
// output to the gradients of the inputs. The closure captures only what it needs (e.g. the
// saved mean and rstd of a LayerNorm, not its whole input). Tensor::backward() sorts the
// nodes topologically and runs the closures from the output back; gradients that reach the
// same tensor along several paths are summed; leaves accumulate into .grad() with +=.
//
// Writing an op (see engine/ops/elementwise.cpp for many):
//   Tensor out = ...forward...;
//   return record("mul", out, {a, b}, [a_ = a.detach(), b_ = b.detach()](const Tensor& g) {
//     return std::vector<Tensor>{g * b_, g * a_};  // undefined Tensor = "no gradient"
//   });
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace engine {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

// Where one input's gradient goes: to the node that made it, or into a leaf's .grad.
struct Edge {
  std::shared_ptr<Node> node;        // set when the input was computed by an op
  std::shared_ptr<TensorImpl> leaf;  // set when the input is a leaf that requires grad
  Shape shape;                       // the input's shape (gradients must match it)
  DType dtype = DType::Float32;
  bool active() const { return node || leaf; }
};

struct Node {
  const char* name;           // op name, for error messages
  std::vector<Edge> inputs;   // one per op input, in the order backward returns grads
  BackwardFn backward;        // released after use unless retain_graph
};

// Is autograd recording? False inside a NoGradGuard.
bool grad_enabled();

// Disables recording in a scope (evaluation, optimizer steps, backward itself).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Attaches a Node to `out` when recording and any input requires grad; returns `out`.
Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn);

// Runs backward from `root` seeded with `grad` (see Tensor::backward).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace engine
