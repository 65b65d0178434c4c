// tools/cuda_emu/include/cublas_v2.h — stands in for cuBLAS in emulated builds: the names the
// engine uses, every call failing with CUBLAS_STATUS_NOT_SUPPORTED (cuda_emu/vendor.h says why).
#pragma once

#include "cuda_emu/vendor.h"

typedef struct cublasContext* cublasHandle_t;
enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };

inline const char* cublasGetStatusString(cublasStatus_t status) {
  if (status == CUBLAS_STATUS_SUCCESS) return "CUBLAS_STATUS_SUCCESS";
  return "cuBLAS is not emulated (tools/cuda_emu runs our kernels only)";
}

#define EMU_CUBLAS_STUB(name) \
  EMU_VENDOR_STUB(cublasStatus_t, CUBLAS_STATUS_NOT_SUPPORTED, "cuBLAS", name)
EMU_CUBLAS_STUB(cublasCreate)
EMU_CUBLAS_STUB(cublasSetStream)
EMU_CUBLAS_STUB(cublasSetMathMode)
EMU_CUBLAS_STUB(cublasSgemm)
EMU_CUBLAS_STUB(cublasDgemm)
enum libraryPropertyType { MAJOR_VERSION = 0, MINOR_VERSION = 1, PATCH_LEVEL = 2 };
EMU_CUBLAS_STUB(cublasGetProperty)
#undef EMU_CUBLAS_STUB
