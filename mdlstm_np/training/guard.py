"""The finiteness guard of a training step, shared by every loop.

One host sync per step: ``L·0 + Σ_k Σ dθ_k·0`` is 0 when the loss and every gradient are
finite and NaN as soon as any element is NaN or ±inf (inf·0 = NaN), without the false alarms a
sum of squares would give by overflowing. Only when it fires are the arrays searched one by one
to name the culprit. The layers' own checks (``NonFiniteError``) become the same
:class:`TrainingDiverged` through :func:`diverged_from`.
"""

from __future__ import annotations


class TrainingDiverged(RuntimeError):
    """Raised when the loss or a gradient is not finite; the bad update is *not* applied.

    Attributes: ``step`` (0-based), ``name`` (the loss or the offending parameter's key),
    ``params`` (the last good parameters: those the bad step started from), ``rows`` (the
    logged rows up to the previous step), ``initial_params``.
    """

    def __init__(self, message, *, step, name, params, rows, initial_params):
        super().__init__(message)
        self.step, self.name, self.params = step, name, params
        self.rows, self.initial_params = rows, initial_params


def diverged_from(error: Exception, name: str, step: int, params, rows, initial):
    """The layers' own finiteness checks (``NonFiniteError``, a FloatingPointError, or the
    ValueError of ``check_params`` for parameters an overflowing update made inf) as a
    :class:`TrainingDiverged`; any other error is re-raised unchanged."""
    if not isinstance(error, FloatingPointError) and "finite" not in str(error):
        raise error
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return TrainingDiverged(f"{name}: a value is not finite (NaN or inf) at step {step} "
                            f"({reason}); stopped there", step=step, name="forward/backward",
                            params=params, rows=rows, initial_params=initial)


def check_step_finite(be, loss, grads, *, name, where, step, params, rows, initial):
    """The guard of one training step: raise :class:`TrainingDiverged` (naming the loss or the
    first non-finite gradient) unless the loss and every gradient are finite.

    One host sync: it reduces ``L·0 + Σ_k Σ dθ_k·0``, which is 0 when everything is finite and
    NaN as soon as anything is NaN or ±inf; only then are the arrays searched one by one.
    ``where`` says where in the run it happened ("step 3", "epoch 2, step 17").
    """
    xp = be.xp
    probe = loss * 0
    for g in grads.values():
        probe = probe + xp.sum(g * 0)                             # NaN iff something is not finite
    if be.all_finite(probe):
        return
    culprit = "loss" if not be.all_finite(loss) else next(
        (k for k in sorted(grads) if not be.all_finite(grads[k])), "?")
    what = "the loss" if culprit == "loss" else f"the gradient of {culprit!r}"
    raise TrainingDiverged(
        f"{name}: {what} is not finite (NaN or inf) at {where}; stopped before applying it, "
        f"keeping the parameters of the last good step", step=step, name=culprit,
        params=params, rows=rows, initial_params=initial)


