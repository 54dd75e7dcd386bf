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


def pytest_terminal_summary(terminalreporter):
    """Print the NVRTC compile table of tests/test_nvrtc.py (kernels, archs, registers,
    spills) at the end of the run, where CI's log keeps it."""
    import sys

    module = sys.modules.get("test_nvrtc")
    if module is not None and getattr(module, "REPORT", None):
        terminalreporter.section("every CUDA kernel through NVRTC and ptxas")
        for line in module.REPORT:
            terminalreporter.write_line(line)
