# The README's two entry points: `make demo` (train -> export -> validate -> bench on real CIFAR-10) and
# `make test`; `make results` remakes every result in the README (hours). Each creates .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/demo
DEMO_EPOCHS ?= 2

.PHONY: install demo test test-fast results clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/toolkit train --model task2 --epochs $(DEMO_EPOCHS) --out $(DEMO_DIR)
	$(BIN)/toolkit export --onnx $(DEMO_DIR)/checkpoint.pt -o $(DEMO_DIR)/task2.onnx
	$(BIN)/toolkit bench $(DEMO_DIR)/checkpoint.pt $(DEMO_DIR)/task2.onnx --provider cpu --json $(DEMO_DIR)/bench.json

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# Every result in the README: full default runs, exports, benchmark records, figures and the results table.
# Each step is a file target, so an interrupted `make results` resumes where it stopped. About 2.5 hours on 2 CPU cores.
RUNS := runs
TOOLKIT := $(BIN)/toolkit
RESNET_CPU := --weights none --image-size 64 --lr 1e-3 --batch-size 64 --epochs 10 --augment --step-size 4 --gamma 0.3 --patience 3
RESULT_RUNS := task2 task2-he-init net1 net1-no-bn net2 net2-bn-before-relu net2-augment resnet18-cpu

train_args_task2 := --model task2
train_args_task2-he-init := --model task2 --init he
train_args_net1 := --model net1
train_args_net1-no-bn := --model net1 --no-batchnorm
train_args_net2 := --model net2
train_args_net2-bn-before-relu := --model net2 --bn-before-relu
train_args_net2-augment := --model net2 --augment
train_args_resnet18-cpu := --model resnet18 $(RESNET_CPU)

$(RUNS)/%/checkpoint.pt: | $(STAMP)
	$(TOOLKIT) train $(train_args_$*) --out $(RUNS)/$*

$(RUNS)/%/model.onnx: $(RUNS)/%/checkpoint.pt
	$(TOOLKIT) export --onnx $< -o $@

docs/bench/%.json: $(RUNS)/%/model.onnx
	@mkdir -p docs/bench
	$(TOOLKIT) bench $(RUNS)/$*/checkpoint.pt $< --provider cpu --json $@ --plot docs/bench/$*.png

FIGURES := docs/figures/figure1_task2.png docs/figures/figure2_net1_net2.png docs/figures/figure3_batchnorm.png \
	docs/figures/figure5_conv1.png docs/figures/figure6_last_conv.png

docs/figures/figure1_task2.png: $(RUNS)/task2/checkpoint.pt
	$(TOOLKIT) plot $(RUNS)/task2 --label "Task 2 CNN" --title "Figure 1: Task 2 CNN" -o $@
docs/figures/figure2_net1_net2.png: $(RUNS)/net1/checkpoint.pt $(RUNS)/net2/checkpoint.pt
	$(TOOLKIT) plot $(RUNS)/net1 $(RUNS)/net2 --label "Network 1" --label "Network 2" --title "Figure 2: Networks 1 and 2" -o $@
docs/figures/figure3_batchnorm.png: $(RUNS)/net1/checkpoint.pt $(RUNS)/net1-no-bn/checkpoint.pt
	$(TOOLKIT) plot $(RUNS)/net1 $(RUNS)/net1-no-bn --label "Network 1 (BatchNorm)" --label "Network 1 without BatchNorm" --title "Figure 3: with and without BatchNorm" -o $@
docs/figures/figure5_conv1.png: $(RUNS)/resnet18-cpu/model.onnx
	$(TOOLKIT) activations $< $(DATA_IMAGES)/zebra.jpg --layer conv1 --filters 14,26,32,49,52 -o $@
docs/figures/figure6_last_conv.png: $(RUNS)/resnet18-cpu/model.onnx
	$(TOOLKIT) activations $< $(DATA_IMAGES)/zebra.jpg --layer layer4.1.conv2 --filters 0-9 -o $@

# The photos beside the data: TOOLKIT_DATA may name the folder or the tarball in it.
DATA_IMAGES ?= $$(d=$${TOOLKIT_DATA:-../shared/data}; [ -f "$$d" ] && d=$$(dirname "$$d"); echo "$$d")/images

docs/results.md: $(foreach r,$(RESULT_RUNS),$(RUNS)/$(r)/model.onnx)
	$(TOOLKIT) report $(foreach r,$(RESULT_RUNS),$(RUNS)/$(r)) --markdown $@

# ResNet18 at the study's 224x224 input, for the efficiency question only (the CPU run's weights, trained at 64x64,
# in a checkpoint that says 224: same graph, 12x the work per image; its accuracy at 224 means nothing).
$(RUNS)/resnet18-cpu-224/checkpoint.pt: $(RUNS)/resnet18-cpu/checkpoint.pt
	@mkdir -p $(@D)
	$(BIN)/python -c "import sys; from toolkit.checkpoint import load_checkpoint, save_checkpoint; \
	c = load_checkpoint(sys.argv[1]); save_checkpoint(sys.argv[2], c.model, name=c.name, model_args=c.model_args, \
	input_size=(3, 224, 224), mean=c.mean, std=c.std, classes=c.classes, config={**c.config, 'image_size': 224}, \
	metrics=c.metrics)" $< $@
$(RUNS)/resnet18-cpu-224/model.onnx: $(RUNS)/resnet18-cpu-224/checkpoint.pt
	$(TOOLKIT) export --onnx $< -o $@ --images 128
docs/bench/resnet18-cpu-224.json: $(RUNS)/resnet18-cpu-224/model.onnx
	$(TOOLKIT) bench $(RUNS)/resnet18-cpu-224/checkpoint.pt $< --provider cpu --batch-sizes 1,64 --runs 20 --images 512 \
	    --no-memory --json $@

BENCH_RECORDS := docs/bench/task2.json docs/bench/net2.json docs/bench/net2-bn-before-relu.json docs/bench/resnet18-cpu.json docs/bench/resnet18-cpu-224.json

docs/bench/summary.md: $(BENCH_RECORDS)
	$(TOOLKIT) bench-summary $^ --markdown $@

results: docs/results.md $(FIGURES) docs/bench/summary.md

.SECONDARY:
.DELETE_ON_ERROR:

clean:
	rm -rf $(VENV) runs build *.egg-info
