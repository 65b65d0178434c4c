#!/usr/bin/env bash
# tools/install_deps.sh [build|test|bench|all] — installs the Debian packages the project needs
# when they are missing (apt-get, as root or through sudo). Safe to run again: it only installs
# what dpkg does not already list as installed.
#   build: compiler, CMake, and the libraries the engine and image2gps link
#   test:  build + GoogleTest + PyTorch/torchvision/PIL for the parity tests
#   bench: test + Google Benchmark + LibTorch (C++) for the side-by-side benchmarks
# The CUDA toolkit (nvcc, cuBLAS, cuDNN) is not a Debian package here; when /usr/local/cuda
# exists the build also compiles the CUDA backend.
set -euo pipefail
what=${1:-test}

build_pkgs=(cmake ninja-build g++ pkg-config libopenblas-dev libcli11-dev nlohmann-json3-dev
            libgeographiclib-dev libexif-dev libstb-dev)
test_pkgs=(googletest libgtest-dev python3 python3-numpy python3-torch python3-torchvision
           python3-pil)
bench_pkgs=(libbenchmark-dev libtorch-dev)

pkgs=("${build_pkgs[@]}")
case "$what" in
  build) ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  bench|all) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
