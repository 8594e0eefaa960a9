"""run_benchmark end to end on a tiny exported model: protocol, settings, figures and errors."""

from __future__ import annotations

import hashlib
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bench_models import MEAN, STD, TINY_MACS, BenchRun, Cifar, PooledNet, Recorder, TinyNet, export_tiny

from benchmarks import BenchmarkInputError, run_benchmark
from benchmarks.overhead import PIPELINE_BATCH_SIZE, PIPELINE_BATCHES_PER_ROUND, overhead_blocks, overhead_runs
from benchmarks.record import REQUIRED_KEYS, SCHEMA_VERSION
from runtime import ProviderError, Session

MEMORY_SCENARIOS = {"torch", "onnx", "runtime_edge"}


def test_record_has_every_schema_key(bench_run: BenchRun) -> None:
    record = bench_run.result.to_dict()
    assert [key for key in REQUIRED_KEYS if key not in record] == []
    assert record["schema_version"] == SCHEMA_VERSION
    assert set(record["accuracy"]) >= {"torch", "onnx", "top1_agreement", "max_abs_logit_diff"}
    assert set(record["latency_ms"]) == {"torch", "onnx"}
    for engine in ("torch", "onnx"):
        assert set(record["latency_ms"][engine]) == {"1", "4"}
        assert set(record["latency_ms"][engine]["4"]) == {"p50", "p90", "p99", "mean", "std", "runs"}
        assert set(record["throughput_ips"][engine]) == set(record["gflops"][engine]) == {"1", "4"}
    assert set(record["first_run_ms"]) == {"torch", "onnx"}
    assert set(record["memory_mb"]) == set(record["memory_scenarios"]) == MEMORY_SCENARIOS
    assert all(isinstance(text, str) and text for text in record["memory_scenarios"].values())
    assert set(record["runtime_overhead_pct"]) == set(record["runtime_overhead"]) == {"1", "64"}
    assert set(record["settings"]) >= {"torch", "onnx", "spin_wait", "graph_optimization"}
    assert set(record["environment"]) >= {"cpu_model", "cpu_flags", "cpu_count", "os", "python", "versions"}
    assert set(record["environment"]["versions"]) >= {"torch", "onnx", "onnxruntime", "numpy"}
    assert set(record["model"]) >= {"path", "sha256", "opset", "export", "name"}
    assert set(record["pipeline"]) >= {"pipeline_ips", "raw_ips", "ratio", "ratio_spread", "rounds", "images"}
    assert set(record["settings"]["engines"]) == {"torch", "onnx"}
    assert record["command_line"] == "toolkit bench tiny.onnx"
    assert record["providers_active"] == ["CPUExecutionProvider"] and record["provider_requested"] == "cpu"


def test_warmup_runs_are_excluded_from_the_timed_list(bench_run: BenchRun, cifar_like: Cifar) -> None:
    kwargs = bench_run.kwargs
    for per_batch in bench_run.result.latency.values():
        assert all(stats.runs == kwargs["runs"] for stats in per_batch.values())
    images = cifar_like[0]
    # torch forwards: 1 cold first run + (warm-up + timed) per batch size + one logits pass in batches of 64.
    chunks = -(-len(images) // 64)
    expected = 1 + len(kwargs["batch_sizes"]) * (kwargs["warmup"] + kwargs["runs"]) + chunks
    assert len(bench_run.forwards) == expected
    timed_batches = [batch for _, _, batch in bench_run.forwards[1 : expected - chunks]]
    assert timed_batches == [1] * 5 + [4] * 5  # warm-up 2 + timed 3 per batch size, phase by phase


def test_torch_threads_applied_during_the_run_and_restored_after(bench_run: BenchRun) -> None:
    assert {threads for _, threads, _ in bench_run.forwards} == {1}  # the caller had set 2
    assert bench_run.threads_after == 2
    settings = bench_run.result.settings["torch"]
    assert settings["intra_op_threads"] == 1
    assert settings["inter_op_threads"] == torch.get_num_interop_threads()
    assert settings["inference_mode"] is True
    # what the record says is what happened: every torch forward (timed, warm-up, accuracy) ran under it
    assert len(bench_run.inference_mode) == len(bench_run.forwards) and all(bench_run.inference_mode)


def test_iobinding_path_binds_input_and_output_and_computes_the_logits(tiny_onnx: Path, cifar_like: Cifar) -> None:
    # The CUDA path's binding, exercised on the CPU device: same names, shapes and result as a plain run.
    from benchmarks.ort_runner import bind_on_device

    session = Session(tiny_onnx, intra_op_threads=1)
    raw = session.inference_session
    x = np.random.default_rng(0).standard_normal((3, *cifar_like[0].shape[1:])).astype(np.float32)  # (3, C, H, W)
    binding = bind_on_device(raw, x, "cpu")
    raw.run_with_iobinding(binding)
    bound = binding.copy_outputs_to_cpu()
    assert len(bound) == 1 and bound[0].shape == (3, raw.get_outputs()[0].shape[-1])
    np.testing.assert_allclose(bound[0], session.run(x), rtol=0, atol=1e-6)


def test_onnxruntime_threads_fixed_and_spinning_disabled(bench_run: BenchRun) -> None:
    settings = bench_run.result.settings
    assert settings["spin_wait"] is False and settings["onnx"]["spin_wait"] is False
    assert settings["onnx"]["ort_session.intra_op.allow_spinning"] == "0"  # as onnxruntime reports it
    (_, session), = bench_run.sessions
    options = session.inference_session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert settings["onnx"]["ort_intra_op_num_threads"] == 1
    assert settings["onnx"]["ort_graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert settings["graph_optimization"] == "all"


def test_torch_is_timed_before_any_onnxruntime_session_exists(bench_run: BenchRun) -> None:
    (created_ns, _), = bench_run.sessions
    assert max(started for started, _, _ in bench_run.forwards) < created_ns


def _expected_torch_logits(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).float() / 255.0
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        return model(x).numpy()


def test_accuracy_on_every_image(bench_run: BenchRun, tiny_model: TinyNet, cifar_like: Cifar) -> None:
    images, labels = cifar_like
    expected = np.argmax(_expected_torch_logits(tiny_model, images), axis=1)
    accuracy = bench_run.result.accuracy
    assert accuracy["images"] == len(images)
    assert accuracy["torch"] == pytest.approx(np.mean(expected == labels))
    assert accuracy["top1_agreement"] >= 0.99
    assert accuracy["max_abs_logit_diff"] < 1e-4
    assert abs(accuracy["onnx"] - accuracy["torch"]) <= 1 - accuracy["top1_agreement"] + 1e-12


def test_derived_throughput_gflops_and_fraction_of_peak(bench_run: BenchRun) -> None:
    result = bench_run.result
    assert result.macs_per_image == TINY_MACS
    peak = result.peak_probe
    assert (peak.size, peak.threads) == (128, 1)
    assert peak.gflops == pytest.approx(2 * 128**3 / peak.best_s / 1e9)
    record = result.to_dict()
    for engine, per_batch in result.latency.items():
        for batch, stats in per_batch.items():
            ips = record["throughput_ips"][engine][str(batch)]
            assert ips == pytest.approx(batch / (stats.mean / 1e3))
            assert record["gflops"][engine][str(batch)] == pytest.approx(2 * TINY_MACS * ips / 1e9)
            assert record["fraction_of_peak"][engine][str(batch)] == pytest.approx(
                record["gflops"][engine][str(batch)] / peak.gflops)
    assert record["first_run_ms"]["torch"] > 0 and record["session_create_ms"] > 0


def test_runtime_overhead_is_the_median_of_interleaved_rounds(bench_run: BenchRun) -> None:
    record, runs = bench_run.result.to_dict(), bench_run.kwargs["runs"]
    for batch in ("1", "64"):
        detail = record["runtime_overhead"][batch]
        per_round = detail["overhead_pct_per_round"]
        assert (detail["rounds"], detail["calls_per_block"]) == overhead_blocks(int(batch), runs)
        assert len(per_round) == detail["rounds"]
        assert record["runtime_overhead_pct"][batch] == pytest.approx(statistics.median(per_round))
        assert detail["overhead_pct_spread"]["min"] == pytest.approx(min(per_round))
        assert detail["overhead_pct_spread"]["max"] == pytest.approx(max(per_round))
        timed = detail["rounds"] * detail["calls_per_block"]
        assert detail["session_run"]["runs"] == detail["raw_run"]["runs"] == timed >= overhead_runs(int(batch), runs)
        assert detail["warmup"] == bench_run.kwargs["warmup"]
    assert record["runtime_overhead"]["1"]["raw_run"]["runs"] >= 200  # runs=3 asked: batch 1 keeps its floor


def test_pipeline_and_raw_side_by_side_over_the_same_images(bench_run: BenchRun, cifar_like: Cifar) -> None:
    pipeline = bench_run.result.to_dict()["pipeline"]
    images = len(cifar_like[0])
    batches = -(-images // PIPELINE_BATCH_SIZE)
    assert pipeline["images"] == images and pipeline["batch_size"] == PIPELINE_BATCH_SIZE
    assert pipeline["rounds"] == len(pipeline["ratio_per_round"]) == -(-batches // PIPELINE_BATCHES_PER_ROUND)
    assert pipeline["ratio"] == pytest.approx(statistics.median(pipeline["ratio_per_round"]))
    assert pipeline["raw_ips"] == pytest.approx(images / pipeline["raw_seconds"])
    assert pipeline["pipeline_ips"] == pytest.approx(images / pipeline["pipeline_seconds"])
    assert pipeline["ratio_of_totals"] == pytest.approx(pipeline["pipeline_ips"] / pipeline["raw_ips"])
    assert pipeline["warmup_batches"] == bench_run.kwargs["warmup"]
    assert pipeline["top1_agreement_with_raw"] >= 0.99  # same preprocessing on both paths


def test_memory_measured_per_engine(bench_run: BenchRun) -> None:
    result = bench_run.result
    details = result.extra["memory_details"]
    for scenario in ("onnx", "runtime_edge"):  # onnxruntime + a 3k-weight model, not this torch process
        assert 10 < result.memory_mb[scenario] < 300
        assert "torch" not in details[scenario]["modules_loaded"]
    assert details["onnx"]["engine"] == "onnx" and details["runtime_edge"]["engine"] == "edge"
    assert details["runtime_edge"]["image"]["source"] == "synthetic"  # no edge_image was given
    assert 0 <= details["runtime_edge"]["predicted"] < 10
    assert result.memory_mb["torch"] is None  # no memory_probe_cmd was given
    assert "memory_probe_cmd" in details["torch"]["error"]


def test_progress_reports_every_step_in_order(bench_run: BenchRun) -> None:
    progress = bench_run.progress
    totals = {total for _, _, total in progress}
    assert len(totals) == 1
    total = totals.pop()
    assert [done for _, done, _ in progress] == list(range(total + 1))
    assert progress[-1][0] == "done"
    messages = [message for message, _, _ in progress]
    assert messages.index("torch batch 4") < messages.index("onnxruntime session") < messages.index("onnx batch 1")


def test_model_facts_from_the_file(bench_run: BenchRun, tiny_onnx: Path) -> None:
    model = bench_run.result.model
    assert model["sha256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert model["opset"] == 18
    assert model["export"] == {"opset": 18, "folded": [], "kept": []}
    assert model["name"] == "tiny"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"images": np.zeros((4, 3, 32, 32), np.float32)}, "expected images as uint8"),
        ({"labels": np.zeros(3, np.int64)}, "one per image"),
        ({"provider": "tpu"}, "unknown provider 'tpu'"),
        ({"batch_sizes": (1, 0)}, "positive ints"),
        ({"runs": 0}, "runs >= 1"),
        ({"time_budget_s": -1.0}, "time_budget_s > 0"),
        ({"mean": (0.5, 0.5)}, "expected 3 mean"),
        ({"onnx_path": "missing.onnx"}, "does not exist"),
        ({"image_size": (64,)}, "positive int or"),
    ],
)
def test_bad_arguments_fail_before_any_work(
    tiny_model: TinyNet, tiny_onnx: Path, cifar_like: Cifar, change: dict[str, Any], match: str
) -> None:
    args: dict[str, Any] = {"onnx_path": tiny_onnx, "images": cifar_like[0][:4], "labels": cifar_like[1][:4],
                            "mean": MEAN, "std": STD} | change
    with pytest.raises(BenchmarkInputError, match=match):
        run_benchmark(tiny_model, args.pop("onnx_path"), args.pop("images"), args.pop("labels"), **args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_by_onnxruntime_first(
    tiny_model: TinyNet, tiny_onnx: Path, cifar_like: Cifar, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Recorder(tiny_model)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # even if torch saw a GPU, onnxruntime decides
    with pytest.raises(ProviderError, match=r"CUDA is not active: .*active providers: .*available providers: .*"
                                            r"CPUExecutionProvider"):
        run_benchmark(model, tiny_onnx, cifar_like[0][:4], cifar_like[1][:4], mean=MEAN, std=STD,
                      provider="cuda")
    assert model.calls == []  # refused before any torch work


def test_images_are_resized_to_the_model_input_size(cifar_like: Cifar, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Recorder(PooledNet().eval())
    onnx_path = export_tiny(model.inner, tmp_path / "pooled.onnx", input_size=(3, 48, 48))
    images, labels = cifar_like[0][:10], cifar_like[1][:10]
    result = run_benchmark(model, onnx_path, images, labels, mean=MEAN, std=STD, batch_sizes=(2,), runs=2, warmup=1,
                           threads=1, peak_probe_size=64, memory=False)
    assert result.extra["protocol"]["input_hw"] == [48, 48]  # from toolkit.input_size, images are 32x32
    assert {batch for _, _, batch in model.calls} == {2, 10}
    assert result.accuracy["top1_agreement"] == 1.0
    # Session.predict resizes uint8 HWC images itself; the engines got batches resized by the benchmark.
    assert result.pipeline["top1_agreement_with_raw"] == 1.0
    assert result.memory_mb == dict.fromkeys(MEMORY_SCENARIOS)
