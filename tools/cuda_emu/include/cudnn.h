// tools/cuda_emu/include/cudnn.h — stands in for cuDNN in emulated builds: the names the engine
// uses, every call failing with CUDNN_STATUS_NOT_SUPPORTED (cuda_emu/vendor.h says why).
#pragma once

#include "cuda_emu/vendor.h"

typedef struct cudnnContext* cudnnHandle_t;
typedef struct cudnnTensorStruct* cudnnTensorDescriptor_t;
typedef struct cudnnFilterStruct* cudnnFilterDescriptor_t;
typedef struct cudnnConvolutionStruct* cudnnConvolutionDescriptor_t;
typedef struct cudnnPoolingStruct* cudnnPoolingDescriptor_t;

enum cudnnStatus_t {
  CUDNN_STATUS_SUCCESS = 0,
  CUDNN_STATUS_BAD_PARAM = 2000,
  CUDNN_STATUS_NOT_SUPPORTED = 3000,
};
enum cudnnDataType_t { CUDNN_DATA_FLOAT = 0, CUDNN_DATA_DOUBLE = 1 };
enum cudnnTensorFormat_t { CUDNN_TENSOR_NCHW = 0, CUDNN_TENSOR_NHWC = 1 };
enum cudnnConvolutionMode_t { CUDNN_CONVOLUTION = 0, CUDNN_CROSS_CORRELATION = 1 };
enum cudnnMathType_t {
  CUDNN_DEFAULT_MATH = 0,
  CUDNN_TENSOR_OP_MATH = 1,
  CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2,
  CUDNN_FMA_MATH = 3
};
enum cudnnDeterminism_t { CUDNN_NON_DETERMINISTIC = 0, CUDNN_DETERMINISTIC = 1 };
enum cudnnNanPropagation_t { CUDNN_NOT_PROPAGATE_NAN = 0, CUDNN_PROPAGATE_NAN = 1 };
enum cudnnPoolingMode_t {
  CUDNN_POOLING_MAX = 0,
  CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING = 1,
  CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING = 2,
  CUDNN_POOLING_MAX_DETERMINISTIC = 3
};
enum cudnnBatchNormMode_t {
  CUDNN_BATCHNORM_PER_ACTIVATION = 0,
  CUDNN_BATCHNORM_SPATIAL = 1,
  CUDNN_BATCHNORM_SPATIAL_PERSISTENT = 2,
};

// What the algorithm searches return: the fields the engine reads.
struct cudnnConvolutionFwdAlgoPerf_t {
  int algo;
  cudnnStatus_t status;
  float time;
  size_t memory;
  cudnnDeterminism_t determinism;
  cudnnMathType_t mathType;
};
using cudnnConvolutionBwdDataAlgoPerf_t = cudnnConvolutionFwdAlgoPerf_t;
using cudnnConvolutionBwdFilterAlgoPerf_t = cudnnConvolutionFwdAlgoPerf_t;

inline const char* cudnnGetErrorString(cudnnStatus_t status) {
  if (status == CUDNN_STATUS_SUCCESS) return "CUDNN_STATUS_SUCCESS";
  return "cuDNN is not emulated (tools/cuda_emu runs our kernels only)";
}

inline size_t cudnnGetVersion() { return 0; }  // no cuDNN here
inline void cudnnGetLastErrorString(char* message, size_t max_size) {
  if (max_size > 0) message[0] = '\0';
}

#define EMU_CUDNN_STUB(name) \
  EMU_VENDOR_STUB(cudnnStatus_t, CUDNN_STATUS_NOT_SUPPORTED, "cuDNN", name)
EMU_CUDNN_STUB(cudnnCreate)
EMU_CUDNN_STUB(cudnnSetStream)
EMU_CUDNN_STUB(cudnnCreateTensorDescriptor)
EMU_CUDNN_STUB(cudnnSetTensor4dDescriptor)
EMU_CUDNN_STUB(cudnnDestroyTensorDescriptor)
EMU_CUDNN_STUB(cudnnCreateFilterDescriptor)
EMU_CUDNN_STUB(cudnnSetFilter4dDescriptor)
EMU_CUDNN_STUB(cudnnDestroyFilterDescriptor)
EMU_CUDNN_STUB(cudnnCreateConvolutionDescriptor)
EMU_CUDNN_STUB(cudnnSetConvolution2dDescriptor)
EMU_CUDNN_STUB(cudnnSetConvolutionGroupCount)
EMU_CUDNN_STUB(cudnnSetConvolutionMathType)
EMU_CUDNN_STUB(cudnnDestroyConvolutionDescriptor)
EMU_CUDNN_STUB(cudnnCreatePoolingDescriptor)
EMU_CUDNN_STUB(cudnnSetPooling2dDescriptor)
EMU_CUDNN_STUB(cudnnDestroyPoolingDescriptor)
EMU_CUDNN_STUB(cudnnPoolingForward)
EMU_CUDNN_STUB(cudnnPoolingBackward)
EMU_CUDNN_STUB(cudnnGetConvolutionForwardAlgorithmMaxCount)
EMU_CUDNN_STUB(cudnnGetConvolutionForwardAlgorithm_v7)
EMU_CUDNN_STUB(cudnnGetConvolutionForwardWorkspaceSize)
EMU_CUDNN_STUB(cudnnFindConvolutionForwardAlgorithmEx)
EMU_CUDNN_STUB(cudnnConvolutionForward)
EMU_CUDNN_STUB(cudnnGetConvolutionBackwardDataAlgorithmMaxCount)
EMU_CUDNN_STUB(cudnnGetConvolutionBackwardDataAlgorithm_v7)
EMU_CUDNN_STUB(cudnnGetConvolutionBackwardDataWorkspaceSize)
EMU_CUDNN_STUB(cudnnFindConvolutionBackwardDataAlgorithmEx)
EMU_CUDNN_STUB(cudnnConvolutionBackwardData)
EMU_CUDNN_STUB(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount)
EMU_CUDNN_STUB(cudnnGetConvolutionBackwardFilterAlgorithm_v7)
EMU_CUDNN_STUB(cudnnGetConvolutionBackwardFilterWorkspaceSize)
EMU_CUDNN_STUB(cudnnFindConvolutionBackwardFilterAlgorithmEx)
EMU_CUDNN_STUB(cudnnConvolutionBackwardFilter)
EMU_CUDNN_STUB(cudnnDeriveBNTensorDescriptor)
EMU_CUDNN_STUB(cudnnBatchNormalizationForwardTraining)
EMU_CUDNN_STUB(cudnnBatchNormalizationForwardInference)
EMU_CUDNN_STUB(cudnnBatchNormalizationBackward)
#undef EMU_CUDNN_STUB
