// Precompiled header of the runtime: the libtorch headers every layer needs. Keep torch out of
// public C headers; this file is only seen by the runtime's own translation units.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/autograd.h>
#include <vector>
#include <string>
#include <memory>
#include <functional>
