#!/usr/bin/env bash
# Build native llama.cpp tools (llama-bench, llama-completion, llama-perplexity, llama-batched-bench,
# llama-server)
# from the exact llama.cpp that the installed llama-cpp-python bundles, into bench/out/native/.
# `--no-amx` builds into bench/out/native-noamx/ with the AMX instructions off (-mno-amx-*): the
# native reference on CPUs whose AMX faults (bench/cpu.py); elsewhere the flags change nothing.
set -euo pipefail
cd "$(dirname "$0")"
version=$(python -c "import llama_cpp; print(llama_cpp.__version__)")
mkdir -p out/native && cd out/native
[ -f "llama_cpp_python-$version.tar.gz" ] || \
  pip download "llama-cpp-python==$version" --no-binary :all: --no-deps -d . -q
[ -d "llama_cpp_python-$version" ] || tar xzf "llama_cpp_python-$version.tar.gz"
build=build flags=()
if [ "${1:-}" = "--no-amx" ]; then
  build=../native-noamx/build
  flags=(-DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
         -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
fi
cmake -S "llama_cpp_python-$version/vendor/llama.cpp" -B "$build" -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_BUILD_SERVER=ON "${flags[@]}"
cmake --build "$build" -j"$(nproc)" --target llama-bench llama-completion llama-perplexity llama-batched-bench \
  llama-server
echo "built: $(cd "$build" && pwd)/bin"
