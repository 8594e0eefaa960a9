"""Pure pieces of the benchmark: percentiles, the timed loop, MAC counting, the time estimate."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from bench_models import TINY_MACS, TinyNet
from onnx import TensorProto, helper, numpy_helper

from benchmarks.errors import BenchmarkInputError
from benchmarks.estimate import estimate_from_cost, estimate_seconds
from benchmarks.flops import count_macs
from benchmarks.inputs import normalize_size, prepare_batch
from benchmarks.overhead import OVERHEAD_MIN_RUNS, PIPELINE_BATCHES_PER_ROUND, measure_overhead, measure_pipeline
from benchmarks.stats import spread, summarize_ns
from benchmarks.timing import time_calls
from benchmarks.torch_runner import cuda_wall_ns
from runtime.preprocess import preprocess_images


def test_percentiles_mean_std_match_hand_computation() -> None:
    stats = summarize_ns([4_000_000, 1_000_000, 3_000_000, 2_000_000])  # 1..4 ms, unordered
    # Linear interpolation at rank p/100 * (n - 1): p90 -> rank 2.7 -> 3 + 0.7 * (4 - 3).
    assert stats.p50 == pytest.approx(2.5)
    assert stats.p90 == pytest.approx(3.7)
    assert stats.p99 == pytest.approx(3.97)
    assert stats.mean == pytest.approx(2.5)
    assert stats.std == pytest.approx(math.sqrt(1.25))  # population std of 1, 2, 3, 4
    assert stats.runs == 4
    assert stats.throughput(8) == pytest.approx(8 / 2.5e-3)  # images / mean seconds


def test_summary_of_no_runs_is_an_error() -> None:
    with pytest.raises(BenchmarkInputError, match="at least one timed run"):
        summarize_ns([])


def test_warmup_calls_are_made_but_never_timed() -> None:
    calls: list[int] = []
    timed: list[int] = []

    def call() -> None:
        calls.append(len(calls))

    def measure(fn) -> int:
        fn()
        timed.append(calls[-1])  # index of the call this measurement wrapped
        return 1000 + calls[-1]

    durations = time_calls(call, warmup=3, runs=5, measure=measure)
    assert len(calls) == 8
    assert timed == [3, 4, 5, 6, 7]  # only the calls after the three warm-ups
    assert durations == [1003, 1004, 1005, 1006, 1007]


def test_time_budget_times_at_least_one_call_and_ignores_runs() -> None:
    calls: list[None] = []
    durations = time_calls(lambda: calls.append(None), warmup=2, runs=1000, time_budget_s=1e-9)
    assert len(durations) == 1  # the budget was spent after the first timed call
    assert len(calls) == 3


def _matmul_gemm_model() -> onnx.ModelProto:
    """input (batch, 5, 7) -> MatMul W (7, 3) -> (batch, 5, 3) -> Reshape (batch, 15) -> Gemm transB (4, 15)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(7, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([-1, 15], dtype=np.int64), "shape"),
        numpy_helper.from_array(rng.normal(size=(4, 15)).astype(np.float32), "g"),
    ]
    nodes = [
        helper.make_node("MatMul", ["input", "w"], ["mm"]),
        helper.make_node("Reshape", ["mm", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "g"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "mm", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 5, 7])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_macs_of_matmul_and_transposed_gemm_equal_hand_count() -> None:
    count = count_macs(_matmul_gemm_model())
    # MatMul: 5 x 3 outputs * K 7 = 105; Gemm (transB): 4 outputs * K 15 = 60.
    assert sorted(count.per_node.values()) == [60, 105]
    assert count.total == 165
    assert count.skipped == ()


def test_macs_of_exported_conv_grouped_conv_linear_equal_hand_count(tiny_onnx: Path) -> None:
    count = count_macs(tiny_onnx)
    assert count.total == TINY_MACS
    assert sorted(count.per_node.values()) == sorted([55_296, 36_864, 20_480])


def test_macs_need_a_graph_input() -> None:
    graph = helper.make_graph([], "empty", [], [])
    with pytest.raises(BenchmarkInputError, match="expected a graph input"):
        count_macs(helper.make_model(graph))


def test_estimate_from_cost_arithmetic() -> None:
    # 1 ms per image, no fixed cost, one batch size of 1, 10 runs, no warm-up, 64 images, two engines:
    #   timed  = 10 * 0.001 = 0.01 s per engine; logits pass = 1 batch of 64 = 0.064 s per engine
    #   overhead comparison = 2 paths * (400 floor runs * 0.001 + 100 floor runs * 0.064) = 13.6 s
    #   pipeline comparison = raw (1 * 0.064) + pipeline (1.5 * 0.064); fixed = 2 s peak probe + 1 s session
    seconds = estimate_from_cost(0.0, 1.0, n_images=64, batch_sizes=(1,), runs=10, warmup=0, memory=False)
    assert seconds == pytest.approx(2 * (0.01 + 0.064) + 13.6 + 2.5 * 0.064 + 3.0)
    with_memory = estimate_from_cost(0.0, 1.0, n_images=64, batch_sizes=(1,), runs=10, warmup=0, memory=True)
    assert with_memory == pytest.approx(seconds + 3 * 2.0)  # torch, onnx and edge memory children


def test_estimate_budget_replaces_runs() -> None:
    a = estimate_from_cost(0.0, 1.0, n_images=64, batch_sizes=(1, 8), runs=10, warmup=0, time_budget_s=5.0)
    b = estimate_from_cost(0.0, 1.0, n_images=64, batch_sizes=(1, 8), runs=150, warmup=0, time_budget_s=5.0)
    c = estimate_from_cost(0.0, 1.0, n_images=64, batch_sizes=(1, 8), runs=10, warmup=0, time_budget_s=6.0)
    # runs still drive the overhead comparison above its floors (400 at batch 1, 100 at batch 64):
    # 2 paths * 50 more runs at batch 64
    assert b - a == pytest.approx(2 * 50 * 0.064)
    assert c - a == pytest.approx(2 * 2 * 1.0)  # 2 engines * 2 batch sizes * 1 extra second


def test_estimate_seconds_measures_the_model(tiny_model: TinyNet) -> None:
    options = {"input_size": (3, 32, 32), "runs": 5, "warmup": 1, "memory": False}
    small = estimate_seconds(tiny_model, n_images=100, **options)
    large = estimate_seconds(tiny_model, n_images=100_000, **options)
    assert 3.0 < small < large  # fixed costs alone are 3 s; more images can only take longer


@pytest.mark.parametrize("size", [(32, 32), (48, 64), (224, 224)])
def test_prepared_batches_match_the_runtime_preprocessing(size: tuple[int, int]) -> None:
    images = np.random.default_rng(1).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)  # (N, C, H, W)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    ours = prepare_batch(images, mean, std, size)
    theirs = preprocess_images(list(images.transpose(0, 2, 3, 1)), (3, *size), mean, std)
    assert ours.dtype == np.float32 and ours.shape == (3, 3, *size)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_image_size_forms() -> None:
    assert normalize_size(None, (32, 32)) == (32, 32)
    assert normalize_size(64, (32, 32)) == (64, 64)
    assert normalize_size((48, 64), (32, 32)) == (48, 64)
    with pytest.raises(BenchmarkInputError, match="positive int or"):
        normalize_size((0, 64), (32, 32))


def test_spread_of_repeated_figures() -> None:
    assert spread([5.0, 1.0, 3.0, 2.0, 4.0]) == {"min": 1.0, "p25": 2.0, "median": 3.0, "p75": 4.0, "max": 5.0}
    with pytest.raises(BenchmarkInputError, match="at least one value"):
        spread([])


class _FakeRawSession:
    """Stands in for onnxruntime.InferenceSession: logs each run and returns logits voting class 0."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log

    def get_inputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name="input")]

    def get_outputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name="logits")]

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = len(feeds["input"])
        self.log.append(("raw", batch))
        logits = np.zeros((batch, 10), np.float32)
        logits[:, 0] = 1.0
        return [logits]


class _FakeSession:
    """Stands in for runtime.Session: logs which path ran ("raw", "session", "predict") and its batch size."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.inference_session = _FakeRawSession(self.log)

    def run(self, x: np.ndarray) -> np.ndarray:
        self.log.append(("session", len(x)))
        return np.zeros((len(x), 10), np.float32)

    def predict(self, images: np.ndarray, batch_size: int) -> np.ndarray:
        self.log.append(("predict", len(images)))
        return np.zeros(len(images), np.int64)


def test_overhead_warms_up_both_paths_then_alternates_blocks_flipping_the_order() -> None:
    session = _FakeSession()
    x = {1: np.zeros((1, 3, 4, 4), np.float32), 64: np.zeros((64, 3, 4, 4), np.float32)}
    details, overhead = measure_overhead(session, x, warmup=3, runs=5)
    expected: list[tuple[str, int]] = []
    for batch in (1, 64):
        rounds, k = details[batch]["rounds"], details[batch]["calls_per_block"]
        assert rounds * k >= OVERHEAD_MIN_RUNS[batch]  # runs=5 asked: raised to the floor of timed calls
        expected += [("raw", batch)] * 3 + [("session", batch)] * 3  # warm-up of both, never timed
        for round_index in range(rounds):
            pair = [("raw", batch)] * k, [("session", batch)] * k
            expected += pair[0] + pair[1] if round_index % 2 == 0 else pair[1] + pair[0]
        assert details[batch]["raw_run"]["runs"] == details[batch]["session_run"]["runs"] == rounds * k
        assert len(details[batch]["overhead_pct_per_round"]) == rounds
        assert overhead[batch] == details[batch]["overhead_pct_median"]
    assert session.log == expected


def test_pipeline_times_both_paths_on_the_same_batches_in_alternating_rounds() -> None:
    session, prepared = _FakeSession(), []
    images = np.zeros((600, 8, 8, 3), np.uint8)  # 10 batches of 64, the last of 24
    labels = np.array([0, 1] * 300)

    def prepare(start: int, stop: int) -> np.ndarray:
        prepared.append((start, stop))
        return np.zeros((stop - start, 3, 8, 8), np.float32)

    result = measure_pipeline(session, images, labels, prepare=prepare, warmup=2)
    expected = [("raw", 64), ("predict", 64)] * 2  # warm-up of both, never timed
    sizes = [min(64, 600 - start) for start in range(0, 600, 64)]
    rounds = [sizes[i : i + PIPELINE_BATCHES_PER_ROUND] for i in range(0, len(sizes), PIPELINE_BATCHES_PER_ROUND)]
    for round_index, block in enumerate(rounds):
        pair = [("raw", n) for n in block], [("predict", n) for n in block]
        expected += pair[0] + pair[1] if round_index % 2 == 0 else pair[1] + pair[0]
    assert session.log == expected
    assert prepared[2:] == [(s, min(s + 64, 600)) for s in range(0, 600, 64)]  # after the warm-up batches
    assert result["rounds"] == len(result["ratio_per_round"]) == len(rounds)
    assert result["images"] == 600 and result["warmup_batches"] == 2
    assert result["accuracy"] == 0.5 and result["top1_agreement_with_raw"] == 1.0


def test_cuda_wall_clock_drains_queued_work_then_waits_for_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: events.append("synchronize"))
    assert cuda_wall_ns(lambda: events.append("call")) >= 0
    assert events == ["synchronize", "call", "synchronize"]  # warm-up tails excluded, the call's GPU work included
