// engine/ops/elementwise.h — elementwise ops with broadcasting, forward and backward.
//
// Binary ops follow NumPy/PyTorch broadcasting; the gradient flowing to a broadcast input is
// summed over the broadcast dims (sum_to). Both inputs must have the same dtype and device.
#pragma once

#include "engine/tensor.h"

namespace engine {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);  // a > 0 where b is not an integer
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor pow(const Tensor& a, double exponent);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor relu(const Tensor& x);
// relu(a + b) in one pass (a residual join and its ReLU, as in ResNet's blocks), broadcasting
// as add; both gradients are relu's, taken from the output.
Tensor add_relu(const Tensor& a, const Tensor& b);
// No autograd: the gradient through a ReLU from its output, g where out > 0 and 0 elsewhere
// (the backward of relu and add_relu; batch_norm_add_relu's too).
Tensor relu_backward(const Tensor& out, const Tensor& g);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor clamp(const Tensor& x, double low, double high);

// In place, no autograd: dst += src (src broadcast to dst's shape). For gradient accumulation
// and optimizers.
void add_(const Tensor& dst, const Tensor& src);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);

}  // namespace engine
