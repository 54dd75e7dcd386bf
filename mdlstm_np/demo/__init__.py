"""The demo's experiments: what ``demo.py`` and ``examples/`` do with the engine and the
training API. Nothing outside this folder (the engine, ``training/``) imports from it.

``models.py``      the seed's three models (MD_LSTM, HORIZONTAL_SD_LSTM, SNAKE_SD_LSTM):
                   a recurrent layer + a per-cell dense sigmoid head (``build_model``)
``tasks.py``       the random-diagonal task (2-D), ``tasks3d.py`` its 3-D version
``train.py``       the seed's task trained step by step (fresh batches, the seed's TSV log)
``demotasks.py``   the epoch tasks of ``demo.py`` (gaussian, digits, diagonal3d, lines)
``handwriting.py`` the hierarchical MDRNN with CTC on lines of handwritten digits
``plots.py``       loss curves and before/after predictions (PNG)
``cli.py``         one-line argument errors; ``runrecord.py`` the output folder and config.json;
``memory.py``      the memory estimate a run is checked against
"""
