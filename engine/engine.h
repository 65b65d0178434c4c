// engine/engine.h — everything a user of the engine needs, in one include.
#pragma once

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/random.h"
#include "engine/shape.h"
#include "engine/tensor.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reduce.h"
