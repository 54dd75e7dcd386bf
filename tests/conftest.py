"""Shared test settings: hypothesis profiles and backend fixtures."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Small shapes, no deadline (a JIT compile or a slow CI core must not fail a test).
settings.register_profile("default", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --- the `core` marker: what a student runs to see every gradient of the engine verified -----
# The engine's gradient checks and equivalences (finite differences, cell-by-cell references,
# numba and the strict array API against numpy), no training runs and no subprocesses:
# `python -m pytest -m core`, under two minutes on two cores from a cold numba cache.
CORE_MODULES = {
    "test_mdlstm_grad", "test_mdlstm_equivalence", "test_cells", "test_layernorm",
    "test_zero_input", "test_stability", "test_multidir", "test_variable_size", "test_sd",
    "test_3d", "test_ctc", "test_hierarchy", "test_readout", "test_head_loss", "test_optim",
    "test_receptive", "test_sweep_contract", "test_strict_backend", "test_numba",
    "test_numba_cells",
}


def _launches_a_process(function) -> bool:
    import inspect

    try:
        return "subprocess" in inspect.getsource(function)
    except (OSError, TypeError):
        return True  # cannot tell: leave it out of the core


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if (module in CORE_MODULES and item.get_closest_marker("slow") is None
                and not _launches_a_process(getattr(item, "function", None))):
            item.add_marker(pytest.mark.core)


def pytest_terminal_summary(terminalreporter):
    """Print the NVRTC compile table of tests/test_nvrtc.py (kernels, archs, registers,
    spills) at the end of the run, where CI's log keeps it."""
    import sys

    module = sys.modules.get("test_nvrtc")
    if module is not None and getattr(module, "REPORT", None):
        terminalreporter.section("every CUDA kernel through NVRTC and ptxas")
        for line in module.REPORT:
            terminalreporter.write_line(line)
