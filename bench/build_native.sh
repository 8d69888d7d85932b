#!/usr/bin/env bash
# Build native llama.cpp tools (llama-bench, llama-completion, llama-perplexity, llama-batched-bench,
# llama-server)
# from the exact llama.cpp that the installed llama-cpp-python bundles, into bench/out/native/.
set -euo pipefail
cd "$(dirname "$0")"
version=$(python -c "import llama_cpp; print(llama_cpp.__version__)")
mkdir -p out/native && cd out/native
[ -f "llama_cpp_python-$version.tar.gz" ] || \
  pip download "llama-cpp-python==$version" --no-binary :all: --no-deps -d . -q
[ -d "llama_cpp_python-$version" ] || tar xzf "llama_cpp_python-$version.tar.gz"
cmake -S "llama_cpp_python-$version/vendor/llama.cpp" -B build -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_BUILD_SERVER=ON
cmake --build build -j"$(nproc)" --target llama-bench llama-completion llama-perplexity llama-batched-bench \
  llama-server
echo "built: $(pwd)/build/bin"
