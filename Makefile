# The two commands a newcomer types: `make demo` and `make test`.
CARGO ?= cargo
VOXFLOW := target/release/voxflow
DEMO_OUT ?= out/demo

.PHONY: demo test test-wheel setup setup-training setup-chromium setup-niivue build docs

# Project-local ONNX Runtime (PyPI wheel onnxruntime; `make setup ORT=gpu`: onnxruntime-gpu) in
# .venv; CMake and g++ for the JPEG-LS decoder (CharLS, built by cargo).
ORT ?= cpu
setup:
	ORT=$(ORT) bash scripts/setup-ort.sh
	bash scripts/setup-cmake.sh

# PyTorch and friends for training/ (the training smoke test needs them).
setup-training:
	bash scripts/setup-training.sh

# Headless Chromium (Debian package `chromium`): the report test opens the HTML report in it.
setup-chromium:
	bash scripts/setup-chromium.sh

# NiiVue (npm @niivue/niivue, pinned), the viewer the HTML report inlines: the build reads it.
setup-niivue:
	bash scripts/setup-niivue.sh

build: setup setup-niivue
	$(CARGO) build --release --workspace

# The main job: the CT liver -> lesion cascade (+ 3D CRF) on the built-in phantom; beside the
# segmentation: its HTML report, overlay PNGs and statistics (docs/REPORTS.md).
demo: build
	$(VOXFLOW) run graphs/ct_liver_lesion.yaml --set output=$(DEMO_OUT)/ct_liver_lesion.nii.gz --report $(DEMO_OUT)/report.json

# The pip route: build the wheel, install it into a fresh virtualenv, segment the phantom with it.
test-wheel: setup setup-niivue
	bash scripts/test-wheel.sh

# The whole test suite (set VOXFLOW_DATA to the real-scan folder to include those tests).
test: setup setup-training setup-chromium setup-niivue test-wheel
	$(CARGO) test --release --workspace

# Regenerate the node reference and the graph JSON Schema from the node declarations.
docs: build
	$(VOXFLOW) nodes --markdown > docs/NODES.md
	$(VOXFLOW) schema > docs/voxflow-graph.schema.json
