"""Reading lines of handwriting: the hierarchical subsampling MDRNN with a CTC output layer
(Graves & Schmidhuber 2008, "Offline Handwriting Recognition with Multidimensional Recurrent
Neural Networks", NIPS; the network RNNLIB trains), assembled from this engine's layers.

The network (one line image in, one label distribution per column group out)
-------------------------------------------------------------------------------
    x (B, H, W, 1)                    the line, sample b in the box [0, sizes[b]) (padding 0)
    1. BlockSubsample  k1 = (2, 2)    -> (B, H/2, W/2, 4)                 sizes s1 = ⌈s0/k1⌉
    2. MDLSTM level 1, 4 directions   -> (B, H/2, W/2, 4·h1)   concat, masked by s1
    3. BlockSubsample  k2 = (2, 2)    -> (B, H/4, W/4, 16·h1)             sizes s2 = ⌈s1/k2⌉
    4. Dense(.., "tanh")              -> (B, H/4, W/4, f2)     mixes the block down to f2
    5. MDLSTM level 2, 4 directions   -> (B, H/4, W/4, 4·h2)   masked by s2
    6. CollapseVertical (sum of rows) -> (B, T, 4·h2)          T = W/4, T_b = s2[b, 1]
    7. dense per time step  u = v V + a               V (4·h2, K), a (K,)   K = 11 (blank + 10)
    8. log-softmax          y = u − ln Σ_k e^{u_k}    (``mdlstm_np.ctc.log_softmax``)
    9. CTC                  loss = −Σ_b ln p(l_b | x_b)  (Graves et al. 2006; ``ctc.ctc_loss``)

Graves & Schmidhuber use three MD-LSTM levels (2, 10 and 50 units) and larger, wider blocks for
real scanned text; our lines are 12-20 px high and 6-116 px wide, so two levels of 2×2 blocks
suffice and keep each of the four directions' grids small. Each level's ``sizes`` come from the
layers' ``out_sizes``, so every line of a padded batch is computed exactly as if it ran alone
(tests/test_handwriting.py). A digit is 6-10 px wide: after the 4× horizontal subsampling it
spans 1.5-2.5 time steps, enough for CTC (one step per label, a blank between repeats); a
rare line whose label sequence needs more steps than its width gives has p(l|x) = 0, and the
training loop gives it loss 0 (``zero_infinity``).

The forget-gate bias starts at -1 (σ(-1) ≈ 0.27), not at the +1 common for 1-D LSTMs. Graves'
cell in 2-D adds both predecessors' states, c = i⊙g + f_1⊙c(p⁻_1) + f_2⊙c(p⁻_2): while
f_1 + f_2 > 1 the state grows geometrically along the wavefronts (``cells/stable.py``). On a
batch of 16 lines (20×80 px, level 1's grids 10×40), untrained, the largest |c| is 21,000 at
level 1 with b_f = +1 (tanh(c) saturated, its gradient zero), 19 with b_f = 0 and 0.8 with
b_f = -1. After 600 steps on lines of 1-3 digits (lr 3e-3) the test CER was 0.89 with b_f = +1,
0.90 with 0 and 0.67 with -1. (Leifert's stable cell bounds the state by construction but has no
numba hot loop: about 4× slower per step here.)

Backward: steps 9' … 1' in reverse, each layer's own hand-derived backward, with
    8'. du = dy − e^{y} Σ_k dy_k                    (``ctc.log_softmax_backward``)
    7'. dV = Σ_{b,t} v_btᵀ du_bt   da = Σ_{b,t} du_bt   dv = du Vᵀ
where padded time steps t ≥ T_b carry dy = 0 from CTC and so add nothing.

The network is a :class:`~mdlstm_np.Model` of these layers, so its parameters live in one flat
dict with a prefix per layer: "rnn1.d0.W" … (level 1's four directions), "ff.V", "ff.a",
"rnn2.d0.W" …, "out.V", "out.a"; steps 1-6 and 8 have none.
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from ..backends import get_backend
from ..ctc import best_path_decode, cer, ctc_loss
from ..data.lines import make_lines
from ..dense import Dense
from ..hierarchy import BlockSubsample, CollapseVertical, SequenceLogSoftmax
from ..multidir import MultiDirectionalMDLSTM
from ..optim import Adam
from ..training.model import Model
from ..validate import check_dtype_name, check_positive_int
from ..training.atomic import atomic_write
from ..training.saving import spec_or_none
from ..training.checkpoint import check_matches, load_checkpoint, restore_training_state, save_checkpoint

LINES_MODEL = "HIERARCHICAL_MDRNN"   # the model name in its checkpoints

N_CLASSES = 11           # blank 0 + digits 0 … 9 as classes 1 … 10 (``data/lines.py``)
BLANK = 0


class HandwritingCache(NamedTuple):
    """What ``HierarchicalMDRNN.backward`` needs: the model's cache and CTC's input lengths."""

    model: Any                  # the ModelCache of steps 1-8
    log_probs: Any              # (T, B, K) output of step 8
    input_lengths: np.ndarray   # (B,) host int64, T_b


class HierarchicalMDRNN(Model):
    """The two-level hierarchical MDRNN of the module docstring: a :class:`Model` of eight
    layers named "sub1", "rnn1", "sub2", "ff", "rnn2", "collapse", "out", "logp".

    h1, f2, h2   : hidden units per direction of level 1, features of the tanh layer, hidden
                   units per direction of level 2.
    blocks       : the two subsampling blocks ((bh, bw), (bh, bw)).
    cell, forget_bias : passed to both MD-LSTM levels (``MDLSTM``); pass the cell explicitly.
    backend, dtype : as for the layers. Only Graves' plain cell has a numba hot loop.

    forward(params, x (B, H, W, 1), sizes (B, 2) or None) -> (log_probs (T, B, K), cache)
    backward(dlog_probs (T, B, K), cache) -> (dx, grads (a dict like params))
    loss(params, x, sizes, targets, target_lengths) -> (loss, grads, log_probs, input_lengths)
    """

    def __init__(self, *, h1=4, f2=16, h2=24, blocks=((2, 2), (2, 2)), cell="graves",
                 forget_bias=-1.0, backend="numpy", dtype="float32"):
        be, dtype = get_backend(backend), check_dtype_name(dtype)
        h1, f2, h2 = (check_positive_int(v, k) for v, k in ((h1, "h1"), (f2, "f2"), (h2, "h2")))
        kw = dict(cell=cell, forget_bias=forget_bias, backend=be, dtype=dtype)
        b1, b2 = (tuple(b) for b in blocks)
        rnn1 = MultiDirectionalMDLSTM(b1[0] * b1[1], h1, 2, **kw)
        rnn2 = MultiDirectionalMDLSTM(f2, h2, 2, **kw)
        layers = (BlockSubsample(b1, backend=be, dtype=dtype),                      # 1.
                  rnn1,                                                             # 2.
                  BlockSubsample(b2, backend=be, dtype=dtype),                      # 3.
                  Dense(b2[0] * b2[1] * rnn1.out_features, f2, "tanh", backend=be,
                        dtype=dtype),                                               # 4.
                  rnn2,                                                             # 5.
                  CollapseVertical(backend=be, dtype=dtype),                        # 6.
                  Dense(rnn2.out_features, N_CLASSES, backend=be, dtype=dtype),     # 7.
                  SequenceLogSoftmax(backend=be, dtype=dtype))                      # 8.
        super().__init__(*layers, names=("sub1", "rnn1", "sub2", "ff", "rnn2", "collapse",
                                         "out", "logp"), name=LINES_MODEL)
        self.h1, self.f2, self.h2, self.cell = h1, f2, h2, cell
        self.features = rnn2.out_features                             # F = 4·h2
        self.blocks = (b1, b2)

    def input_lengths(self, sizes) -> np.ndarray:
        """CTC input lengths T_b (B,) of lines with ``sizes`` (B, 2): ⌈⌈W_b/k1⌉/k2⌉."""
        return np.asarray(self.out_sizes(np.asarray(sizes, dtype=np.int64)))[:, 0]

    def forward(self, params, x, sizes=None):
        """x (B, H, W, 1) float of the model's dtype, sizes (B, 2) host ints or None.

        Returns log_probs (T, B, K), T = ⌈⌈W/k1⌉/k2⌉, K = 11, and the cache. Time steps
        t ≥ T_b of sample b hold a uniform distribution (the scores there are masked to 0);
        CTC ignores them.
        """
        y, cache = super().forward(params, x, sizes)                             # 1.-8.
        T, B = y.shape[0], y.shape[1]
        lengths = (self.input_lengths(sizes) if sizes is not None
                   else np.full(B, T, dtype=np.int64))
        return y, HandwritingCache(cache, y, lengths)

    def backward(self, dlog_probs, cache: HandwritingCache):
        """dlog_probs (T, B, K) = ∂loss/∂log_probs -> dx, grads (a dict with params' keys)."""
        if tuple(dlog_probs.shape) != tuple(cache.log_probs.shape):
            raise ValueError(f"dlog_probs: expected shape {tuple(cache.log_probs.shape)}, got "
                             f"{tuple(dlog_probs.shape)}")
        return super().backward(dlog_probs, cache.model)                         # 8'.-1'.

    def loss(self, params, x, sizes, targets, target_lengths, *, reduction="mean"):
        """CTC loss of a batch and its gradient (impossible lines count 0, ``zero_infinity``).

        targets (B, S) host ints (classes 1 … 10, padded), target_lengths (B,).
        Returns (loss as a Python float, grads, log_probs (T, B, K), input_lengths (B,)).
        """
        y, cache = self.forward(params, x, sizes)
        loss, dy = ctc_loss(self.be, y, targets, cache.input_lengths, target_lengths,
                            blank=BLANK, reduction=reduction, zero_infinity=True)   # 9.
        return float(loss), self.backward(dy, cache)[1], y, cache.input_lengths


# =========================================================================== training
class LinesResult(NamedTuple):
    """What ``train_lines`` returns."""

    model: HierarchicalMDRNN
    params: dict          # the trained parameters (backend arrays)
    curve: list           # one dict per logged step: step, seconds, loss (mean CTC per line)
    evals: list           # one dict per evaluation: step, seconds, test_cer, train_cer
    test_cer: float       # greedy-decoding CER on the test lines at the end, in [0, 1]
    untrained_cer: float  # the same before the first step
    predictions: list     # decoded test labellings (lists of classes 1 … 10), test set order
    test: Any             # the test ``Lines`` (host arrays)
    settings: dict        # every argument of the run
    seconds: float        # wall time of the training loop, evaluations included (all runs)
    stopped: bool = False  # True when ``should_stop`` ended the run early


def _batches(widths, batch, rng, bucket=16):
    """One epoch of minibatches (lists of indices): shuffled, then each run of ``bucket``
    batches sorted by line width, so a batch pads little; batch order shuffled again."""
    order = rng.permutation(len(widths))
    out = []
    for start in range(0, len(order), batch * bucket):
        chunk = order[start:start + batch * bucket]
        chunk = chunk[np.argsort(widths[chunk], kind="stable")]
        out += [chunk[i:i + batch] for i in range(0, len(chunk), batch)]
    return [out[i] for i in rng.permutation(len(out))]


def crop_batch(lines, idx):
    """Rows ``idx`` of a ``Lines`` set, the padding cropped to the batch's largest line."""
    sizes = lines.sizes[idx]
    h, w = sizes.max(axis=0)
    return lines.images[idx, :h, :w], sizes, lines.targets[idx], lines.target_lengths[idx]


def decode(model, params, lines, batch=64):
    """Greedy (best-path) labellings of every line of ``lines``: a list of label lists."""
    be, out = model.be, []
    for start in range(0, len(lines.sizes), batch):
        idx = np.arange(start, min(start + batch, len(lines.sizes)))
        x, sizes, _, _ = crop_batch(lines, idx)
        y, cache = model.forward(params, be.asarray(x, model.dtype), sizes)
        out += best_path_decode(be.to_numpy(y), cache.input_lengths, blank=BLANK)
    return out


def truth(lines):
    """The target labellings of ``lines``: a list of label lists (classes 1 … 10)."""
    return [list(t[:n]) for t, n in zip(lines.targets.tolist(), lines.target_lengths)]


def train_lines(steps=None, *, epochs=None, batch=16, h1=4, f2=16, h2=24, lr=6e-3, seed=0,
                n_train=4000, n_test=300, backend="auto", dtype="float32", cell="graves",
                forget_bias=-1.0, eval_every=500, time_limit=None, progress=True,
                refresh=3, decay_at=0.7, lines_kwargs=None, checkpoint=None,
                checkpoint_every=100, resume=False, should_stop=None):
    """Train ``HierarchicalMDRNN`` with CTC on lines of handwritten digits; return the result.

    steps / epochs : how long: ``steps`` Adam steps, or ``epochs`` passes over the training
        lines (give one; default 3000 steps). ``time_limit`` (seconds) stops earlier.
    batch          : lines per minibatch (padded to the batch's largest line).
    h1, f2, h2     : the model's sizes; cell, forget_bias: its MD-LSTM cell and the initial
                     forget-gate bias (``HierarchicalMDRNN``).
    lr             : Adam's step size α (``mdlstm_np.optim.Adam``).
    decay_at       : a fraction in (0, 1]: α becomes α/10 once this fraction of the run is done,
                     measured in steps or, with ``time_limit``, in time, whichever is further
                     along (so a time-limited run on a slow machine still anneals); None: never.
    seed           : fixes the data (train lines ``make_lines(n_train, "train", seed=seed)``,
                     test lines from the other half of the digit images), the initial
                     parameters and the batch order.
    n_train, n_test: number of training lines (per epoch) and test lines.
    refresh        : k >= 1: every k-th epoch composes ``n_train`` new training lines (the
                     same digit images of the train half in new sizes, gaps, jitter and noise:
                     an augmentation; set number e seeded by SeedSequence((seed, e))).
                     0: the same lines every epoch. The test lines never change.
    backend, dtype : where and in which precision to train ("auto": numba on a CPU).
    eval_every     : test CER (greedy decoding) every so many steps, and at the end.
    progress       : a tqdm progress bar showing the loss and the last test CER.
    lines_kwargs   : extra arguments for ``make_lines`` (geometry, noise), both splits.
    checkpoint     : a path (``.npz``): the run's state (parameters, Adam's moments, the batch
                     generator, the rest of the epoch's batches, the curves) is written there
                     atomically every ``checkpoint_every`` steps, when ``should_stop`` stops
                     the run, and at the end (``checkpoint.py``).
    resume         : continue from ``checkpoint`` when it exists (from scratch otherwise): the
                     losses and CERs then equal an uninterrupted run's bit for bit (same
                     backend and dtype; not with ``time_limit``, which depends on the clock).
    should_stop    : callable (steps done) -> bool, asked after every step but the last; True
                     saves the checkpoint and ends the run (``LinesResult.stopped``).

    Returns :class:`LinesResult`. Raises ValueError for bad arguments, FloatingPointError if
    the loss or a gradient becomes NaN or infinite, CheckpointError for a checkpoint of
    another run.
    """
    if (steps is None) == (epochs is None) and not (steps is None and epochs is None):
        raise ValueError("steps, epochs: expected one of them, got both")
    batch = check_positive_int(batch, "batch")
    n_train, n_test = check_positive_int(n_train, "n_train"), check_positive_int(n_test, "n_test")
    eval_every = check_positive_int(eval_every, "eval_every")
    refresh = check_positive_int(refresh, "refresh", minimum=0)
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    if resume and checkpoint is None:
        raise ValueError("resume: needs checkpoint=path")
    if decay_at is not None and not (isinstance(decay_at, (int, float)) and 0 < decay_at <= 1):
        raise ValueError(f"decay_at: expected a number in (0, 1] or None, got {decay_at!r}")
    per_epoch = -(-n_train // batch)
    if epochs is not None:
        steps = check_positive_int(epochs, "epochs") * per_epoch
    steps = check_positive_int(3000 if steps is None else steps, "steps")
    settings = dict(steps=steps, epochs=epochs, batch=batch, h1=h1, f2=f2, h2=h2, lr=lr,
                    decay_at=decay_at, refresh=refresh, seed=seed, n_train=n_train,
                    n_test=n_test, dtype=dtype, cell=cell, forget_bias=forget_bias,
                    eval_every=eval_every, time_limit=time_limit,
                    lines_kwargs=dict(lines_kwargs or {}))
    model = HierarchicalMDRNN(h1=h1, f2=f2, h2=h2, cell=cell, forget_bias=forget_bias,
                              backend=backend, dtype=dtype)
    settings["backend"] = model.be.name
    be = model.be
    def training_lines(generation):
        """The training set of refresh ``generation`` (0: the first; k: epochs k·refresh …)."""
        line_seed = seed if generation == 0 else int(
            np.random.SeedSequence((seed, generation)).generate_state(1)[0])
        return make_lines(n_train, "train", seed=line_seed, dtype=dtype, **(lines_kwargs or {}))

    test = make_lines(n_test, "test", seed=seed, dtype=dtype, **(lines_kwargs or {}))
    test_truth = truth(test)
    rng = np.random.default_rng((seed, 2))
    params = model.init_params(rng)
    opt = Adam(params, lr=lr)
    checked = {k: v for k, v in settings.items() if k != "backend"}  # loads on any backend

    curve, evals, queue = [], [], []
    start, epoch, elapsed, untrained = 0, 0, 0.0, None
    if resume and os.path.exists(checkpoint):
        ckpt = load_checkpoint(checkpoint)
        check_matches(ckpt, model_name=LINES_MODEL, settings=checked, params=params, be=be,
                      dtype=dtype)
        params = restore_training_state(ckpt, be=be, dtype=dtype, optimizer=opt,
                                        rng=rng)   # α/10 after the decay included
        m = ckpt.meta
        start, epoch, elapsed, untrained = ckpt.step, m["epoch"], m["seconds"], m["untrained_cer"]
        curve, evals = [dict(r) for r in m["curve"]], [dict(r) for r in m["evals"]]
        queue = [np.asarray(b, dtype=np.int64) for b in m["queue"]]
        if "decayed_at_step" in m:
            settings["decayed_at_step"] = m["decayed_at_step"]
    train = training_lines((epoch - 1) // refresh if refresh and epoch > 0 else 0)
    if untrained is None:
        untrained = cer(decode(model, params, test), test_truth)

    def save(done):
        if checkpoint is None:
            return
        extra = {"epoch": epoch, "seconds": time.perf_counter() - t0, "untrained_cer": untrained,
                 "curve": curve, "evals": evals, "queue": [b.tolist() for b in queue]}
        if "decayed_at_step" in settings:
            extra["decayed_at_step"] = settings["decayed_at_step"]
        save_checkpoint(checkpoint, be=be, model_name=LINES_MODEL, settings=checked, step=done,
                        params=params, optimizer=opt, rng=rng,
                        extra={**extra, "model_spec": spec_or_none(model)})

    t0 = time.perf_counter() - elapsed
    bar = tqdm(range(start + 1, steps + 1), desc="lines", unit="step", disable=not progress,
               dynamic_ncols=True, initial=start, total=steps)
    last_cer = evals[-1]["test_cer"] if evals else untrained
    step, stopped = start, False
    for step in bar:
        if not queue:
            if refresh and epoch > 0 and epoch % refresh == 0:
                train = training_lines(epoch // refresh)
            queue, epoch = _batches(train.sizes[:, 1], batch, rng), epoch + 1
        done = max(step - 1, 0) / steps
        if time_limit is not None:
            done = max(done, (time.perf_counter() - t0) / time_limit)
        if decay_at is not None and done >= decay_at and opt.lr == lr:
            opt.lr = lr / 10.0
            settings["decayed_at_step"] = step
        x, sizes, tg, tl = crop_batch(train, queue.pop())
        loss, grads, _, _ = model.loss(params, be.asarray(x, dtype), sizes, tg, tl)
        if not np.isfinite(loss) or not all(bool(be.all_finite(g)) for g in grads.values()):
            raise FloatingPointError(f"train_lines: loss or gradient not finite at step {step} "
                                     f"(loss {loss})")
        opt.step(params, grads)
        curve.append(dict(step=step, seconds=time.perf_counter() - t0, loss=loss))
        out_of_time = time_limit is not None and time.perf_counter() - t0 > time_limit
        if step % eval_every == 0 or step == steps or out_of_time:
            last_cer = cer(decode(model, params, test), test_truth)
            evals.append(dict(step=step, seconds=time.perf_counter() - t0, test_cer=last_cer))
        bar.set_postfix(loss=f"{np.mean([r['loss'] for r in curve[-50:]]):.3f}",
                        cer=f"{last_cer:.3f}")
        if out_of_time:
            break
        if step < steps and should_stop is not None and should_stop(step):
            stopped = True
            break
        if step % checkpoint_every == 0 and step < steps:
            save(step)
    bar.close()
    save(step)
    seconds = time.perf_counter() - t0
    predictions = decode(model, params, test)
    settings["steps_done"] = step
    return LinesResult(model, params, curve, evals, cer(predictions, test_truth), untrained,
                       predictions, test, settings, seconds, stopped)


# --------------------------------------------------------------------------- figures
def write_logs(result, curves_path: str, evals_path: str) -> list:
    """The run's per-step log (step, seconds, mean CTC loss per line) and its evaluations
    (step, seconds, test CER) as two TSV files, each written atomically; returns the paths."""
    from ..training.atomic import atomic_write

    tables = [(curves_path, "step\tseconds\tloss\n" + "".join(
                   f"{r['step']}\t{r['seconds']:.3f}\t{r['loss']:.6g}\n" for r in result.curve)),
              (evals_path, "step\tseconds\ttest_cer\n" + "".join(
                   f"{e['step']}\t{e['seconds']:.3f}\t{e['test_cer']:.6g}\n"
                   for e in result.evals))]
    for path, text in tables:
        def writer(tmp, text=text):
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
        atomic_write(path, writer, suffix=".tsv")
    return [path for path, _ in tables]


def _save(fig, path) -> str:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80), suffix=".png")


def plot_curves(result, path):
    """Loss per step (and its running mean) and the test CER at each evaluation, with the
    run's settings above them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import marker, scale_y, settings_text

    steps = np.array([r["step"] for r in result.curve])
    loss = np.array([r["loss"] for r in result.curve])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(steps, loss, color="0.8", lw=0.5, marker=marker(len(steps)), markersize=3,
           label="per step")
    k = max(1, len(loss) // 100)
    a.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), label=f"mean of {k}")
    scale_y(a, loss)
    a.set(xlabel="step", ylabel="CTC loss per line", title="training loss")
    a.legend()
    ev = [(0, result.untrained_cer)] + [(e["step"], e["test_cer"]) for e in result.evals]
    b.plot(*zip(*ev), "o-")
    scale_y(b, [c for _, c in ev])
    b.set(xlabel="step", ylabel="CER", title="test CER (greedy decoding)")
    b.grid(alpha=0.3)
    settings = dict(getattr(result, "settings", None) or {})
    if settings:
        settings.setdefault("hidden", settings.get("h2"))
        fig.suptitle(settings_text(settings), fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def plot_lines(result, path, n=8):
    """The first ``n`` test lines with their true and predicted strings (red when wrong)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data.lines import labels_to_text

    test, n = result.test, min(n, len(result.test.sizes))
    fig, axes = plt.subplots(n, 1, figsize=(6, 0.75 * n + 0.4))
    for i, ax in enumerate(np.atleast_1d(axes)):
        h, w = test.sizes[i]
        true = labels_to_text(test.targets[i, :test.target_lengths[i]])
        pred = labels_to_text(result.predictions[i])
        ax.imshow(test.images[i, :h, :w, 0], cmap="gray_r", vmin=0, vmax=1,
                  extent=(0, w, h, 0))
        ax.set_xlim(0, test.sizes[:n, 1].max())
        ax.set_anchor("W")                               # left-aligned, one pixel scale
        ax.set_axis_off()
        ax.text(1.01, 0.5, f"true {true}\npred {pred}", transform=ax.transAxes, va="center",
                family="monospace", fontsize=8, color="black" if pred == true else "red")
    from .plots import settings_text

    settings = dict(getattr(result, "settings", None) or {})
    fig.suptitle(f"test lines (CER {result.test_cer:.3f})"
                 + (f"\n{settings_text(settings)}" if settings else ""), fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path
