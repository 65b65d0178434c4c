// apps/image2gps/cli.h — the subcommands of `image2gps`, each registered by its own file.
#pragma once

#include <CLI/CLI.hpp>

namespace i2g {

void add_dataset_commands(CLI::App& app);  // cli_dataset.cpp: dataset build | plot
void add_train_commands(CLI::App& app);    // cli_train.cpp:   train, grid
void add_eval_commands(CLI::App& app);     // cli_eval.cpp:    eval, export, predict
void add_forward_command(CLI::App& app);   // cli_forward.cpp: forward
void add_demo_command(CLI::App& app);      // cli_demo.cpp:    demo

// --device DEVICE (its help text: the choices, default first) and the GPU options beside it:
// --kernels default|ours|vendor, --tf32, --cudnn-benchmark and --cudnn-nondeterministic, kept
// in gpu_choices() (trainer.h) and applied by resolve_device when the device is a GPU.
void add_device_options(CLI::App* c, std::string& device, const char* help = "auto | cpu | cuda");

// --workers of train, grid, eval, export and predict (decode_workers in loader.h).
inline constexpr const char* kWorkersHelp =
    "Image decoding threads; 0: 2 with --device cpu (the model needs the cores), every core "
    "but one (at most 16) on a GPU";

}  // namespace i2g
