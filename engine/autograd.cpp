#include "engine/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "engine/error.h"
#include "engine/ops/elementwise.h"
#include "engine/profiler.h"

namespace engine {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

namespace {

// Frees a node without recursion. The default ~Node would destroy its Edges, whose
// shared_ptr<Node> may be the last owner of the previous node, and so on: one stack frame set
// per node, which overflows on long graphs (20000 chained ops under AddressSanitizer).
// Instead, move the inputs' nodes out before deleting, and keep unlinking those that we own
// alone; each node then dies with empty inputs.
struct NodeDeleter {
  void operator()(Node* node) const {
    std::vector<std::shared_ptr<Node>> pending;
    auto unlink = [&pending](Node& n) {
      for (Edge& e : n.inputs)
        if (e.node) pending.push_back(std::move(e.node));
    };
    unlink(*node);
    delete node;
    while (!pending.empty()) {
      std::shared_ptr<Node> n = std::move(pending.back());
      pending.pop_back();
      if (n.use_count() == 1) unlink(*n);  // last owner: it is freed at the end of this scope
    }
  }
};

}  // namespace

Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!g_grad_enabled) return out;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return out;

  std::shared_ptr<Node> node(new Node(), NodeDeleter{});
  node->name = name;
  node->backward = std::move(fn);
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined()) {
      e.shape = t.shape();
      e.dtype = t.dtype();
      if (t.requires_grad()) {
        if (t.impl().grad_fn) e.node = t.impl().grad_fn;
        else e.leaf = t.impl_ptr();
      }
    }
    node->inputs.push_back(std::move(e));
  }
  // `out` may alias an input's TensorImpl only if the op returned it unchanged; ops always
  // return a fresh impl, so attaching the node here cannot rewrite an input's history.
  out.impl().requires_grad = true;
  out.impl().grad_fn = std::move(node);
  return out;
}

namespace {

// Nodes reachable from `root`, ordered so each node comes before every node it feeds
// (reverse post-order of an iterative depth-first search: no recursion, deep nets are fine).
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post;
  std::unordered_set<Node*> seen{root};
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      Node* child = node->inputs[next++].node.get();
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      post.push_back(node);
      stack.pop_back();
    }
  }
  return {post.rbegin(), post.rend()};
}

void accumulate_leaf(TensorImpl& leaf, const Tensor& g) {
  if (!leaf.grad) {
    // Adopt the incoming gradient when nothing else can see its memory (the common case: a
    // fresh buffer made by the op's backward); otherwise own a copy, since it may be a view
    // of another gradient that is still in flight.
    bool exclusive = g.impl_ptr().use_count() == 1 && g.impl().storage.use_count() == 1 &&
                     g.is_contiguous();
    if (exclusive) {
      leaf.grad = g.impl_ptr();
    } else {
      profiler::Range range("accumulate_grad", profiler::Phase::Backward);
      leaf.grad = g.clone().impl_ptr();
    }
  } else {
    profiler::Range range("accumulate_grad", profiler::Phase::Backward);
    add_(Tensor(leaf.grad), g);
  }
}

// sum += g for a gradient waiting in run_backward's map. In place when nothing else can see the
// sum's memory (the map holds its only reference, e.g. a fresh buffer from an op's backward):
// no new buffer, and one tensor of that size less alive at the moment of the sum. Otherwise
// (a view of a gradient still in flight, or memory shared with `g`) into a new tensor.
void accumulate_pending(Tensor& sum, const Tensor& g) {
  const bool exclusive = sum.impl_ptr().use_count() == 1 &&
                         sum.impl().storage.use_count() == 1 && sum.is_contiguous() &&
                         sum.dtype() == g.dtype();
  if (exclusive)
    add_(sum, g);
  else
    sum = add(sum, g);
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  check(root.requires_grad(), "backward: the tensor does not require grad (no op that made it ",
        "had an input with requires_grad)");
  Tensor seed = grad;
  if (!seed.defined()) {
    check(root.numel() == 1, "backward: a gradient must be given for a non-scalar output of shape ",
          root.shape());
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  check(seed.shape() == root.shape(), "backward: gradient shape ", seed.shape(),
        " does not match the output shape ", root.shape());

  NoGradGuard no_grad;  // gradients of gradients are not recorded
  if (!root.impl().grad_fn) {
    accumulate_leaf(root.impl(), seed);
    return;
  }
  Node* root_node = root.impl().grad_fn.get();
  std::unordered_map<Node*, Tensor> pending{{root_node, seed}};

  for (Node* node : topological_order(root_node)) {
    auto it = pending.find(node);
    if (it == pending.end()) continue;  // nothing flowed into this node
    Tensor g = std::move(it->second);
    pending.erase(it);
    check(static_cast<bool>(node->backward), "backward: the graph through '", node->name,
          "' was already freed; call backward(grad, /*retain_graph=*/true) the first time");
    std::vector<Tensor> grads;
    {
      profiler::Range range(node->name, profiler::Phase::Backward);
      grads = node->backward(g);
    }
    // Let go of the incoming gradient now: a view of it that is a leaf's gradient (a reshape's
    // or a transpose's backward) is then the only user of its memory and is adopted, not copied.
    g = Tensor();
    check(grads.size() == node->inputs.size(), "internal error: '", node->name, "' returned ",
          grads.size(), " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      const Edge& e = node->inputs[i];
      if (!e.active() || !grads[i].defined()) continue;
      check(grads[i].shape() == e.shape, "internal error: '", node->name, "' gave a gradient of ",
            "shape ", grads[i].shape(), " for input ", i, " of shape ", e.shape);
      if (e.leaf) {
        accumulate_leaf(*e.leaf, grads[i]);
      } else {
        auto [slot, inserted] = pending.try_emplace(e.node.get(), grads[i]);
        if (!inserted) {
          profiler::Range range("accumulate_grad", profiler::Phase::Backward);
          accumulate_pending(slot->second, grads[i]);
        }
      }
    }
    if (!retain_graph) {
      node->backward = nullptr;  // frees the saved tensors
    }
  }
}

}  // namespace engine
