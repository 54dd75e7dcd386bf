"""The experiment side: what the seed's project does with the engine, kept apart from it.

``models.py``   the seed's three models (MD_LSTM, HORIZONTAL_SD_LSTM, SNAKE_SD_LSTM) as
                recurrent layer + per-cell dense sigmoid head (``build_model``)
``tasks.py``    the random-diagonal task (2-D), ``tasks3d.py`` its 3-D version
``train.py``    the seed's training loop (Adam, MSE, NaN guard, TSV logs)
``plots.py``    loss curves and before/after predictions (PNG)
``atomic.py``   atomic file writes: every file here is written through it
"""
