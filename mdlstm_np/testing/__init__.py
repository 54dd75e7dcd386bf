"""Test oracles, apart from the engine they check.

``gradcheck.py``   finite-difference gradient checks (per element and directional), float64
``reference.py``   a cell-by-cell raster-order MD-LSTM forward written straight from the
                   equations (no wavefronts, no packing): the oracle for the sweep
"""
