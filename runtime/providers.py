"""Execution providers and session options: name resolution, creation, and proof of what is active.

onnxruntime treats the provider list as a wish list: when the CUDA provider library fails to load
(missing libcublas, libcudnn...) it logs the reason to stderr and silently runs on CPU. Sessions made
here are therefore checked after creation, and onnxruntime's own log text is captured so the error
can say why CUDA did not load.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import onnxruntime as ort

from runtime.errors import InputError, ModelFileError, ProviderError
from runtime.modelfile import describe_load_failure

__all__ = [
    "PROVIDERS",
    "OPTIMIZATION_LEVELS",
    "provider_chain",
    "make_session_options",
    "create_session",
    "OutputCapture",
    "explain_inactive",
    "reason_from_log",
]

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PROVIDERS: dict[str, str] = {"cpu": CPU, "cuda": CUDA}
OPTIMIZATION_LEVELS: dict[str, ort.GraphOptimizationLevel] = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


def provider_chain(name: str) -> list[str]:
    """onnxruntime provider list for a short name: "cpu" -> [CPU], "cuda" -> [CUDA, CPU]."""
    if name not in PROVIDERS:
        raise ProviderError(
            f"unknown provider {name!r}: expected one of {sorted(PROVIDERS)}; "
            f"onnxruntime here offers {ort.get_available_providers()}"
        )
    # CPU stays in the CUDA list for ops CUDA lacks; create_session proves CUDA itself is active.
    return [CPU] if name == "cpu" else [CUDA, CPU]


def make_session_options(
    intra_op_threads: int | None,
    inter_op_threads: int | None,
    spin_wait: bool,
    graph_optimization: str,
) -> tuple[ort.SessionOptions, dict[str, Any]]:
    """Build SessionOptions and the ``settings`` record of what was applied (None = onnxruntime default)."""
    for label, value in (("intra_op_threads", intra_op_threads), ("inter_op_threads", inter_op_threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"{label} must be a positive int or None (onnxruntime default), got {value!r}")
    if graph_optimization not in OPTIMIZATION_LEVELS:
        raise InputError(
            f"unknown graph_optimization {graph_optimization!r}: expected one of {list(OPTIMIZATION_LEVELS)}"
        )
    options = ort.SessionOptions()
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    if inter_op_threads is not None:
        options.inter_op_num_threads = inter_op_threads
    options.graph_optimization_level = OPTIMIZATION_LEVELS[graph_optimization]
    entries: dict[str, str] = {}
    if not spin_wait:
        # Spinning threads burn a core between calls; on a shared edge CPU that skews everything else.
        for key in _SPIN_KEYS:
            options.add_session_config_entry(key, "0")
            entries[key] = "0"
    settings = {
        "intra_op_threads": intra_op_threads,
        "inter_op_threads": inter_op_threads,
        "spin_wait": bool(spin_wait),
        "graph_optimization": graph_optimization,
        "config_entries": entries,
    }
    return options, settings


def create_session(model: str | bytes, options: ort.SessionOptions, provider: str, path: Path) -> ort.InferenceSession:
    """Create an InferenceSession for ``provider`` and prove that provider is really active.

    ``model`` is a file path or serialized bytes; ``path`` names the file in error messages.
    """
    chain = provider_chain(provider)
    if chain[0] not in ort.get_available_providers():
        raise ProviderError(explain_inactive(provider, "", []))
    capture = OutputCapture(enabled=provider != "cpu")
    with capture:
        if provider == "cuda":
            _preload_cuda_libraries()
        try:
            session = ort.InferenceSession(model, sess_options=options, providers=chain)
        except Exception as exc:  # onnxruntime's pybind errors share no useful base class
            failure: Exception | None = exc
        else:
            failure = None
    if capture.text:
        logger.debug("onnxruntime output while creating the %s session: %s", provider, capture.text)
    if failure is not None:
        if type(failure).__name__ == "EPFail":
            raise ProviderError(explain_inactive(provider, f"{capture.text}\n{failure}", [])) from failure
        raise ModelFileError(describe_load_failure(path, failure)) from failure
    active = session.get_providers()
    if chain[0] not in active:
        raise ProviderError(explain_inactive(provider, capture.text, active))
    # Without this, a CUDA failure inside run() makes onnxruntime quietly retry on CPU.
    session.disable_fallback()
    return session


def explain_inactive(provider: str, captured: str, active: list[str]) -> str:
    """One line: the provider is not active, why (from onnxruntime's log when captured), and the fix."""
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers()
    label = "CUDA" if provider == "cuda" else wanted
    if wanted not in available:
        why = f"this onnxruntime {ort.__version__} build ({ort.get_device()}) has no {wanted}"
        fix = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
    else:
        why = reason_from_log(captured) or f"onnxruntime listed {wanted} but fell back without logging why"
        built = getattr(ort, "cuda_version", "") or "its"
        fix = (
            f"install the CUDA {built} and cuDNN libraries onnxruntime {ort.__version__} was built for "
            "(pip install 'onnxruntime-gpu[cuda,cudnn]' brings them) and check that nvidia-smi sees a GPU"
        )
    return (
        f"{label} is not active: {why}; active providers: {active or 'none'}, "
        f"available providers: {available}; fix: {fix}"
    )


def reason_from_log(captured: str) -> str:
    """The most telling line of onnxruntime's log, e.g. the library that failed to load."""
    lines = [line.strip() for line in captured.splitlines() if line.strip()]
    patterns = (r"cannot open shared object|Failed to load|\.so[.\d]*:|\.dll", r"CUDA|cuda|cudnn|cublas", r"EP Error")
    for pattern in patterns:
        for line in lines:
            if re.search(pattern, line):
                # Drop onnxruntime's "time [E:onnxruntime:...] file.cc:12 Func() [ONNXRuntimeError] : 1 : FAIL :"
                words = re.sub(r"^.*?\[[EWIV]:onnxruntime:[^\]]*\]\s*", "", line)
                return re.sub(r"^.*\[ONNXRuntimeError\] : \d+ : \w+ : ", "", words)[:400]
    return ""


@functools.cache
def _preload_cuda_libraries() -> None:
    """Let onnxruntime-gpu find CUDA/cuDNN from pip's nvidia-* packages (onnxruntime.preload_dlls).

    torch normally loads those libraries on import; the runtime never imports torch, so without this
    a pip-installed CUDA is invisible. Skipped when torch is already loaded, to avoid mixing two copies.
    """
    if "torch" in sys.modules or not hasattr(ort, "preload_dlls"):
        return
    try:
        ort.preload_dlls()
    except Exception as exc:  # best effort: the provider check afterwards reports what is missing
        logger.debug("onnxruntime.preload_dlls failed: %s", exc)


class OutputCapture:
    """Capture stdout, stderr and Python warnings while active; the text is in ``.text`` after exit.

    stdout/stderr are swapped at the file-descriptor level because onnxruntime's C++ logger writes
    there, below Python. That is process-wide, so it is used only around short session creations.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.text = ""
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> OutputCapture:
        if not self.enabled:
            return self
        import tempfile  # here, not at the top: ~1 MB resident that CPU-only sessions never use

        _flush_all()
        self._sink = self._stack.enter_context(tempfile.TemporaryFile())
        self._python = io.StringIO()
        self._warnings = self._stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        self._stack.enter_context(contextlib.redirect_stdout(self._python))
        self._stack.enter_context(contextlib.redirect_stderr(self._python))
        self._saved = [(fd, os.dup(fd)) for fd in (1, 2)]
        for fd, _ in self._saved:
            os.dup2(self._sink.fileno(), fd)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self.enabled:
            return
        _flush_all()
        for fd, saved in self._saved:
            os.dup2(saved, fd)
            os.close(saved)
        self._sink.seek(0)
        native = self._sink.read().decode("utf-8", errors="replace")
        caught = "\n".join(str(w.message) for w in self._warnings)
        self.text = "\n".join(part for part in (native, self._python.getvalue(), caught) if part.strip())
        self._stack.close()


def _flush_all() -> None:
    """Flush Python's and C stdio's buffers so captured text lands on the right side of the swap."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)
