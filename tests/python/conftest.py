# conftest.py: shared fixtures of the Python tests; the `gpu` marker (skipped without CUDA).
# Run: python -m pytest tests/python -m "not gpu" (CI, CPU), or -m gpu on a CUDA machine.
import pytest
import torch

import tnl


def cuda_usable():
    return tnl.cuda_built() and torch.cuda.is_available()


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device and a CUDA build of tnl")


def pytest_collection_modifyitems(config, items):
    if cuda_usable():
        return
    skip = pytest.mark.skip(reason="no CUDA device, or tnl built without CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


def make_qkv(B, H, N, D, E, layout="bhnd", dtype=torch.float32, device="cpu"):
    """q, k ~ N(0, 1/D), v ~ N(0, 1), like real activations (spec §4)."""
    def shape(dim):
        return (B, H, N, dim) if layout == "bhnd" else (B, N, H, dim)
    q = torch.randn(shape(D), dtype=torch.float64) / D ** 0.5
    k = torch.randn(shape(D), dtype=torch.float64) / D ** 0.5
    v = torch.randn(shape(E), dtype=torch.float64)
    return tuple(x.to(dtype=dtype, device=device) for x in (q, k, v))


def make_slopes(H):
    """A spread of decay rates: 0 (no decay), tiny, TransNormer-like, and 1."""
    base = [0.0, 1e-4, 0.3, 1.0]
    return torch.tensor([base[h % 4] if h < 4 else 0.5 ** h for h in range(H)],
                        dtype=torch.float32)
