#!/usr/bin/env bash
# CMake and a C++ compiler: the JPEG-LS decoder (crate `charls`, CharLS in C++) is built with them
# by `cargo build`. Debian/Ubuntu packages `cmake` and `g++`; installs them as root, else says what
# to run.
set -euo pipefail

if command -v cmake >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1; then
    echo "cmake: $(command -v cmake), c++: $(command -v c++)"
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake g++
    echo "cmake: $(command -v cmake), c++: $(command -v c++)"
else
    echo "cmake or a C++ compiler is missing; building voxflow (JPEG-LS via CharLS) needs them." >&2
    echo "Install them with:" >&2
    echo "    sudo apt-get install cmake g++    (Debian/Ubuntu packages \`cmake\`, \`g++\`)" >&2
    exit 1
fi
