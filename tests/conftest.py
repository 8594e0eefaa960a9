"""Shared fixtures: where the real data lies (TOOLKIT_DATA, else ../shared/data from the repo root)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("TOOLKIT_DATA")
    return Path(env).resolve() if env else (REPO.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (CIFAR-10 tarball and photos); skips only where it is absent."""
    path = _shared_data()
    if not (path / "cifar-10-python.tar.gz").is_file():
        pytest.skip(f"real data not found at {path}: set TOOLKIT_DATA")
    return path


@pytest.fixture(scope="session")
def cifar(data_dir: Path):  # type: ignore[no-untyped-def]
    """The real CIFAR-10, loaded once per test session."""
    from toolkit.data import load_cifar10

    return load_cifar10(data_dir, download=False)
