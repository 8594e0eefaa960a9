"""Peak resident memory of one scenario, measured in a process of its own.

Run as a child so that neither engine's allocations (nor the benchmark's images) count for the other::

    python -m benchmarks.memory --engine onnx MODEL.onnx --threads 2
    python -m benchmarks.memory --engine edge MODEL.onnx --image photo.jpg --threads 2
    python -m benchmarks.memory --engine torch --loader toolkit.checkpoint:load_checkpoint \
        --checkpoint checkpoint.pt --input-size 3 32 32 --threads 2

Scenarios (``SCENARIOS`` holds the text the record carries):

- ``onnx``: the benchmark's workload on onnxruntime: ``runtime.Session``, a few runs at batch 1 and 64
  on random float32 input;
- ``edge``: what an application on the device does: ``import runtime``, open the model, decode one
  photo with Pillow (a synthetic uint8 image when no photo is given), ``Session.predict([image])``;
- ``torch``: the torch baseline: the model loaded through ``--loader``, a few runs at batch 1 and 64.

The child imports only what its scenario needs (torch is never imported for ``onnx`` or ``edge``) and
prints one JSON line with its peak RSS (``VmHWM`` on Linux, see ``_peak_rss_kib`` for why not
``ru_maxrss``; ``ru_maxrss`` elsewhere) and which heavy modules were loaded.

The module's top level imports only the standard library, and ``benchmarks/__init__.py`` imports
lazily, so ``-m benchmarks.memory`` loads nothing heavy before the engine's own imports.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.errors import MemoryProbeError

__all__ = ["SCENARIOS", "onnx_probe_command", "edge_probe_command", "torch_probe_command", "probe_memory", "main"]

logger = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parents[1]  # the directory holding benchmarks/ and runtime/
PROBE_BATCHES = (1, 64)
SYNTHETIC_PHOTO_HWC = (480, 640, 3)  # the stand-in when no photo is available: a VGA-sized RGB frame
_WATCHED_MODULES = ("torch", "onnx", "onnxruntime", "numpy", "PIL")
SCENARIOS = {
    "torch": "torch: the checkpoint's model loaded, a few forwards at batch 1 and 64 (random float32 input)",
    "onnx": "onnxruntime via runtime.Session, a few runs at batch 1 and 64 (random float32 input): the "
            "benchmark's workload",
    "runtime_edge": "an application on the device: import runtime, Session(model), decode one photo with "
                    "Pillow, Session.predict([photo]) (no torch)",
}


def onnx_probe_command(onnx_path: str | os.PathLike[str], *, threads: int, provider: str = "cpu") -> list[str]:
    """argv of the child that measures onnxruntime (through ``runtime.Session``) on ``onnx_path``."""
    return [sys.executable, "-m", "benchmarks.memory", "--engine", "onnx", os.fspath(onnx_path),
            "--threads", str(threads), "--provider", provider]


def edge_probe_command(
    onnx_path: str | os.PathLike[str], *, image: str | os.PathLike[str] | None, threads: int, provider: str = "cpu",
) -> list[str]:
    """argv of the child that opens ``onnx_path`` and classifies one photo (``image``; None: a synthetic one)."""
    command = [sys.executable, "-m", "benchmarks.memory", "--engine", "edge", os.fspath(onnx_path),
               "--threads", str(threads), "--provider", provider]
    return command if image is None else [*command, "--image", os.fspath(image)]


def torch_probe_command(
    loader: str, checkpoint: str | os.PathLike[str], input_size: Sequence[int], *, threads: int,
    provider: str = "cpu",
) -> list[str]:
    """argv of the child that measures torch; ``loader`` is "module:function" taking the checkpoint path.

    The function may return an ``nn.Module`` or an object with a ``.model`` module (such as a loaded
    checkpoint record).
    """
    return [sys.executable, "-m", "benchmarks.memory", "--engine", "torch", "--loader", loader,
            "--checkpoint", os.fspath(checkpoint), "--input-size", *map(str, input_size),
            "--threads", str(threads), "--provider", provider]


def probe_memory(command: Sequence[str], *, timeout_s: float = 300.0) -> dict[str, Any]:
    """Run a probe child and return its JSON result (``peak_rss_mb`` and details)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MemoryProbeError(f"memory probe {' '.join(command)!r} did not finish ({exc}); check the command") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MemoryProbeError(
            f"memory probe exited with code {done.returncode} ({last}); expected one JSON line; "
            f"run it by hand to see why: {' '.join(command)}"
        )
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise MemoryProbeError(f"memory probe printed {lines[-1][:80]!r}, expected a JSON line") from exc


def _peak_rss_kib() -> tuple[int, str]:
    """Peak resident set size of this process in KiB, and where it was read.

    Linux's ``ru_maxrss`` survives ``exec``: a child spawned (fork/vfork) from a large parent reports
    the parent's high-water mark, so a probe started from a benchmark holding torch would read the
    benchmark's memory. ``VmHWM`` in /proc/self/status belongs to the current address space only, so
    it is preferred; ``ru_maxrss`` is the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak // 1024 if sys.platform == "darwin" else peak), "ru_maxrss"  # macOS reports bytes, Linux KiB


def _run_onnx(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from runtime import Session

    session = Session(args.model, args.provider, intra_op_threads=args.threads, inter_op_threads=1, spin_wait=False)
    size = tuple(args.input_size) if args.input_size else session.metadata.input_size
    if size is None:
        raise MemoryProbeError(f"model {args.model} has no fixed input size; pass --input-size C H W")
    rng = np.random.default_rng(0)
    for batch in PROBE_BATCHES:
        x = rng.standard_normal((batch, *size), dtype=np.float32)  # (B, C, H, W)
        for _ in range(args.runs):
            session.run(x)
    return {"batches": list(PROBE_BATCHES), "runs": args.runs}


def _run_edge(args: argparse.Namespace) -> dict[str, Any]:
    from runtime import Session

    session = Session(args.model, args.provider, intra_op_threads=args.threads, inter_op_threads=1, spin_wait=False)
    photo, image = _read_photo(args.image)
    (predicted,) = session.predict([photo])
    classes = session.metadata.classes
    return {"image": image, "predicted": int(predicted),
            "predicted_class": classes[predicted] if predicted < len(classes) else None}


def _read_photo(path: str | None) -> tuple[Any, dict[str, Any]]:
    """The photo at ``path`` decoded by Pillow as uint8 HWC (as stored: L, RGB or RGBA), or a synthetic one."""
    import numpy as np

    if path is None:
        photo = np.random.default_rng(0).integers(0, 256, SYNTHETIC_PHOTO_HWC, dtype=np.uint8)  # (H, W, 3)
        return photo, {"source": "synthetic", "shape": list(photo.shape)}
    from PIL import Image  # the application decodes; the runtime itself never imports Pillow

    with Image.open(path) as img:
        if img.mode not in ("L", "RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        photo = np.asarray(img, dtype=np.uint8)  # (H, W) or (H, W, C)
    return photo, {"source": "photo", "path": os.path.abspath(path), "shape": list(photo.shape)}


def _run_torch(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if not args.loader or not args.checkpoint or not args.input_size:
        raise MemoryProbeError(
            "--engine torch needs --loader module:function, --checkpoint PATH and --input-size C H W"
        )
    module_name, _, function_name = args.loader.partition(":")
    loaded = getattr(importlib.import_module(module_name), function_name)(args.checkpoint)
    model = getattr(loaded, "model", loaded)
    torch.set_num_threads(args.threads)
    device = "cuda" if args.provider == "cuda" else "cpu"
    model = model.eval().to(device)
    with torch.inference_mode():
        for batch in PROBE_BATCHES:
            x = torch.randn(batch, *args.input_size, device=device)  # (B, C, H, W)
            for _ in range(args.runs):
                model(x)
    return {"batches": list(PROBE_BATCHES), "runs": args.runs}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.memory``; prints one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("onnx", "edge", "torch"), required=True)
    parser.add_argument("model", nargs="?", help="ONNX file (engines onnx and edge)")
    parser.add_argument("--image", help="photo to classify (engine edge; default: a synthetic uint8 image)")
    parser.add_argument("--loader", help="module:function returning the torch model (engine torch)")
    parser.add_argument("--checkpoint", help="path given to the loader (engine torch)")
    parser.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.engine in ("onnx", "edge") and not args.model:
        parser.error(f"--engine {args.engine} needs the ONNX file path")
    startup_kib, _ = _peak_rss_kib()
    details = {"onnx": _run_onnx, "edge": _run_edge, "torch": _run_torch}[args.engine](args)
    peak_kib, source = _peak_rss_kib()
    result = {
        "engine": args.engine, "peak_rss_kib": peak_kib, "peak_rss_mb": peak_kib / 1024,
        "startup_rss_mb": startup_kib / 1024, "source": source, "threads": args.threads,
        "provider": args.provider, "modules_loaded": [m for m in _WATCHED_MODULES if m in sys.modules], **details,
    }
    print(json.dumps(result))  # the protocol with the parent: one JSON line on stdout
    return 0


if __name__ == "__main__":
    sys.exit(main())
