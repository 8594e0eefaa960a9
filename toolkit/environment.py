"""What `toolkit doctor` reports: the runtime's environment check plus the torch side of this process."""
from __future__ import annotations

from typing import Any


def check_environment() -> dict[str, Any]:
    """``runtime.check_environment()`` with torch's thread counts (intra-op, inter-op) added.

    torch is imported only when installed; an edge environment without it reports ``None``.
    """
    from runtime import check_environment as check_runtime

    env = check_runtime()
    problems = env.pop("problems")
    env["torch_threads"] = _torch_threads()
    env["problems"] = problems  # stays last: the report lists it after the table
    return env


def _torch_threads() -> dict[str, int] | None:
    try:
        import torch
    except ImportError:
        return None
    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
