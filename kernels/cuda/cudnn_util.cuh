// kernels/cuda/cudnn_util.cuh — RAII handles for the cuDNN descriptors the vendor paths use
// (pool.cu, batchnorm.cu, conv2d.cu), all describing NHWC tensors.
//
// A descriptor is a small host object; creating one per call costs microseconds, well below a
// convolution, so nothing is cached. Every call is checked (KCUDNN_CHECK -> raise ->
// engine::Error). cuDNN takes sizes as int: callers check that theirs fit first.
#pragma once

#include <cudnn.h>

#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

inline cudnnDataType_t cudnn_type(DType t) {
  return t == DType::Float64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
}

// [n, h, w, c] activations, channels last (cuDNN orders the sizes n, c, h, w).
class TensorDesc {
 public:
  TensorDesc(DType t, int n, int h, int w, int c) {
    KCUDNN_CHECK(cudnnCreateTensorDescriptor(&d_));
    try {
      KCUDNN_CHECK(cudnnSetTensor4dDescriptor(d_, CUDNN_TENSOR_NHWC, cudnn_type(t), n, c, h, w));
    } catch (...) {  // no destructor runs for a half-built object
      cudnnDestroyTensorDescriptor(d_);
      throw;
    }
  }
  TensorDesc() { KCUDNN_CHECK(cudnnCreateTensorDescriptor(&d_)); }  // filled by the caller
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  cudnnTensorDescriptor_t get() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

// [k, r, s, c / groups] filters: cuDNN's NHWC filter format is exactly our weight layout.
class FilterDesc {
 public:
  FilterDesc(DType t, int k, int r, int s, int c_per_group) {
    KCUDNN_CHECK(cudnnCreateFilterDescriptor(&d_));
    try {
      KCUDNN_CHECK(
          cudnnSetFilter4dDescriptor(d_, cudnn_type(t), CUDNN_TENSOR_NHWC, k, c_per_group, r, s));
    } catch (...) {
      cudnnDestroyFilterDescriptor(d_);
      throw;
    }
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d_); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  cudnnFilterDescriptor_t get() const { return d_; }

 private:
  cudnnFilterDescriptor_t d_ = nullptr;
};

class ConvDesc {
 public:
  // Cross-correlation (what deep-learning "convolution" means), accumulating in the data type;
  // FMA math: no TF32 tensor cores for float32, so results match the CPU within float rounding;
  // with kernels::cuda::tf32() on, CUDNN_DEFAULT_MATH lets float32 use them (PyTorch's
  // allow_tf32; conv2d_ops.cu then sets each algorithm's own math type before running it).
  // Never CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: that one may convert float32 data to FP16.
  ConvDesc(DType t, int pad_h, int pad_w, int stride_h, int stride_w, int dil_h, int dil_w,
           int groups) {
    KCUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d_));
    try {
      KCUDNN_CHECK(cudnnSetConvolution2dDescriptor(d_, pad_h, pad_w, stride_h, stride_w, dil_h,
                                                   dil_w, CUDNN_CROSS_CORRELATION, cudnn_type(t)));
      KCUDNN_CHECK(cudnnSetConvolutionGroupCount(d_, groups));
      const bool allow_tf32 = t == DType::Float32 && tf32();
      KCUDNN_CHECK(
          cudnnSetConvolutionMathType(d_, allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    } catch (...) {
      cudnnDestroyConvolutionDescriptor(d_);
      throw;
    }
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d_); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  cudnnConvolutionDescriptor_t get() const { return d_; }

 private:
  cudnnConvolutionDescriptor_t d_ = nullptr;
};

class PoolDesc {
 public:
  PoolDesc(cudnnPoolingMode_t mode, int win_h, int win_w, int pad_h, int pad_w, int stride_h,
           int stride_w) {
    KCUDNN_CHECK(cudnnCreatePoolingDescriptor(&d_));
    try {
      KCUDNN_CHECK(cudnnSetPooling2dDescriptor(d_, mode, CUDNN_PROPAGATE_NAN, win_h, win_w, pad_h,
                                               pad_w, stride_h, stride_w));
    } catch (...) {
      cudnnDestroyPoolingDescriptor(d_);
      throw;
    }
  }
  ~PoolDesc() { cudnnDestroyPoolingDescriptor(d_); }
  PoolDesc(const PoolDesc&) = delete;
  PoolDesc& operator=(const PoolDesc&) = delete;
  cudnnPoolingDescriptor_t get() const { return d_; }

 private:
  cudnnPoolingDescriptor_t d_ = nullptr;
};

// The alpha = 1 / beta = 0 scalars cuDNN reads on the host: double for double data, else float.
struct Blend {
  explicit Blend(DType t) : dbl(t == DType::Float64) {}
  const void* one() const { return dbl ? static_cast<const void*>(&d1) : &f1; }
  const void* zero() const { return dbl ? static_cast<const void*>(&d0) : &f0; }
  bool dbl;
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
};

}  // namespace kernels::cuda
