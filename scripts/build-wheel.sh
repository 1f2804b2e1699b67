#!/usr/bin/env bash
# Builds the voxflow wheel target/wheels/voxflow-VERSION-py3-none-PLATFORM.whl (release build of
# the `voxflow` executable, the shipped graphs and models, dependency onnxruntime==1.31.1; see
# pyproject.toml). maturin is installed, pinned, into the project-local virtualenv `.venv-build`.
# Users: `pip install target/wheels/voxflow-*.whl` (README, "Without Rust: pip").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-build"
MATURIN_VERSION="1.16.0"
PYTHON="${PYTHON:-python3}"

if [ "$("$VENV/bin/maturin" --version 2>/dev/null)" != "maturin $MATURIN_VERSION" ]; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "maturin==$MATURIN_VERSION"
fi

# The build inlines NiiVue into the report (nodes/build.rs) and compiles CharLS with CMake.
bash "$ROOT/scripts/setup-niivue.sh"
bash "$ROOT/scripts/setup-cmake.sh"

# The wheel's data folder (pyproject.toml `data`), installed under <prefix>/share/voxflow/: every
# graph, the models the graphs name (`../models/NAME.onnx`) and the models' README (licences).
data="$ROOT/target/wheel-data"
share="$data/data/share/voxflow"
rm -rf "$data"
mkdir -p "$share/models"
cp -R "$ROOT/graphs" "$share/graphs"
models=$(grep -rhoE '\.\./models/[A-Za-z0-9_./-]+\.onnx' "$ROOT/graphs" | sort -u)
[ -n "$models" ] || { echo "build-wheel: the graphs name no model" >&2; exit 1; }
for m in $models; do
    mkdir -p "$(dirname "$share/${m#../}")"
    cp "$ROOT/${m#../}" "$share/${m#../}"
done
cp "$ROOT/models/README.md" "$share/models/README.md"

# Only the wheel built now is left in target/wheels (the test installs `voxflow-*.whl`).
rm -f "$ROOT"/target/wheels/voxflow-*.whl
cd "$ROOT"
"$VENV/bin/maturin" build --release --locked --out "$ROOT/target/wheels" "$@"
wheel=$(compgen -G "$ROOT/target/wheels/voxflow-*.whl")
echo "voxflow wheel: $wheel ($(du -h "$wheel" | cut -f1))"
