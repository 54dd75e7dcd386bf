"""The torch modules (``mdlstm_np/torch.py``): gradients, variable sizes, state_dict, errors,
training against the engine's own loop, and one DDP step against one single-process step."""

import importlib.util
import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch front end needs PyTorch "
                                             "(pip install 'mdlstm_np[torch]')")

from mdlstm_np.torch import MDLSTM, MultiDirectionalMDLSTM, torch_name  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DDP_EXAMPLE = os.path.join(ROOT, "examples", "ddp.py")

CELLS = {"graves": {"cell": "graves"}, "peepholes": {"peepholes": True}, "stable": {"cell": "stable"},
         "leakylp": {"cell": "leakylp"}, "ln": {"ln": True}, "ln_seed": {"ln": "seed"}}


def randomize(module, seed, scale=0.5):
    """Every parameter drawn from N(0, scale²) (peepholes, gains and shifts included), so that
    no check runs at a special point such as zero peepholes or unit gains."""
    rng = np.random.default_rng(seed)
    module.load_engine_params({k: scale * rng.standard_normal(tuple(p.shape))
                               for k, p in module.engine_params().items()})
    return module


def gradcheck_module(module, x, **kw):
    """torch.autograd.gradcheck of out = module(x) with respect to x and every parameter."""
    names = [n for n, _ in module.named_parameters()]
    leaves = [p.detach().clone().requires_grad_() for _, p in module.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(module, dict(zip(names, ps)), (x,), kw)

    return torch.autograd.gradcheck(f, (x, *leaves), eps=1e-6, atol=1e-7, rtol=1e-5)


def tiny_input(seed, shape=(2, 3, 3, 2)):
    """Standard-normal input (non-degenerate: no layer-norm block is constant)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", list(CELLS))
def test_gradcheck_every_cell(kind):
    m = randomize(MDLSTM(2, 3, 2, backend="numpy", dtype="float64", **CELLS[kind]), seed=1)
    assert gradcheck_module(m, tiny_input(2))


@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_gradcheck_multidirectional(combine):
    m = randomize(MultiDirectionalMDLSTM(2, 2, 2, combine=combine, backend="numpy",
                                         dtype="float64"), seed=3)
    assert gradcheck_module(m, tiny_input(4))


def test_gradcheck_multidirectional_with_sizes():
    m = randomize(MultiDirectionalMDLSTM(1, 2, 2, combine="sum", backend="numpy",
                                         dtype="float64"), seed=5)
    x = tiny_input(6, (2, 3, 4, 1))
    with torch.no_grad():
        x[1, 2:], x[1, :, 2:] = 0.0, 0.0  # sample 1 is 2×2, padded
    assert gradcheck_module(m, x, sizes=torch.tensor([[3, 4], [2, 2]]))


def test_auto_backend_on_cpu_matches_numpy():
    """backend="auto" with CPU tensors picks numba (if installed) or numpy, never cupy."""
    torch.manual_seed(0)
    ref = MDLSTM(1, 4, 2, backend="numpy", dtype="float32")
    auto = MDLSTM(1, 4, 2, backend="auto", dtype="float32")
    auto.load_state_dict(ref.state_dict())
    x = torch.rand(3, 5, 4, 1)
    outs, grads = [], []
    for m in (ref, auto):
        out = m(x)
        out.pow(2).sum().backward()
        outs.append(out.detach())
        grads.append([p.grad for p in m.parameters()])
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    for g_auto, g_ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(g_auto, g_ref, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- variable sizes
def test_sizes_each_sample_equals_running_it_alone():
    m = randomize(MultiDirectionalMDLSTM(1, 3, 2, backend="numpy", dtype="float64"), seed=7)
    x = torch.zeros(2, 5, 4, 1, dtype=torch.float64)
    x[0] = torch.rand(5, 4, 1, dtype=torch.float64)
    x[1, :3, :2] = torch.rand(3, 2, 1, dtype=torch.float64)
    x.requires_grad_()
    sizes = torch.tensor([[5, 4], [3, 2]])
    out = m(x, sizes=sizes)
    w = torch.rand_like(out)
    (out * w).sum().backward()
    for b, (h, wd) in enumerate(sizes.tolist()):
        alone = x[b:b + 1, :h, :wd].detach().clone().requires_grad_()
        out_b = m(alone)
        (out_b * w[b:b + 1, :h, :wd]).sum().backward()
        torch.testing.assert_close(out[b:b + 1, :h, :wd], out_b, rtol=0, atol=1e-12)
        torch.testing.assert_close(x.grad[b:b + 1, :h, :wd], alone.grad, rtol=0, atol=1e-12)
    assert not out[1, 3:].any() and not out[1, :, 2:].any()  # padding: zero output
    assert not x.grad[1, 3:].any() and not x.grad[1, :, 2:].any()  # and zero gradient


# --------------------------------------------------------------------------- state_dict
def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    a = MultiDirectionalMDLSTM(1, 2, 2, peepholes=True, backend="numpy", dtype="float64")
    torch.manual_seed(1)
    b = MultiDirectionalMDLSTM(1, 2, 2, peepholes=True, backend="numpy", dtype="float64")
    engine_keys = list(a.engine.param_shapes())
    assert list(a.state_dict()) == [torch_name(k) for k in engine_keys]  # "d0.W" -> "d0_W"
    assert "d3_w_f" in a.state_dict()
    x = torch.rand(2, 3, 3, 1, dtype=torch.float64)
    assert not torch.equal(a(x), b(x))
    torch.save(a.state_dict(), tmp_path / "a.pt")
    b.load_state_dict(torch.load(tmp_path / "a.pt"))
    assert torch.equal(a(x), b(x))
    assert list(b.engine_params()) == engine_keys


def test_torch_seed_fixes_initial_parameters():
    torch.manual_seed(3)
    a = MDLSTM(2, 3, 2, backend="numpy", dtype="float64")
    torch.manual_seed(3)
    b = MDLSTM(2, 3, 2, backend="numpy", dtype="float64")
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


# --------------------------------------------------------------------------- the cache
def test_in_place_update_between_forward_and_backward_is_caught():
    """The cache holds views of the parameters (no copy); torch's version counters turn an
    in-place change before backward into an error instead of a silently wrong gradient."""
    m = MDLSTM(1, 2, 2, backend="numpy", dtype="float64")
    out = m(torch.rand(1, 2, 2, 1, dtype=torch.float64))
    with torch.no_grad():
        m.U.add_(1.0)  # what optimizer.step() would do
    with pytest.raises(RuntimeError, match="inplace"):
        out.sum().backward()


def test_zero_copies_on_the_cpu():
    """The engine receives views of the tensors, and the module returns the engine's output
    array itself (a non-contiguous view: the module docstring says to use .reshape)."""
    m = MDLSTM(1, 2, 2, backend="numpy", dtype="float64")
    seen = {}
    forward = m.engine.forward

    def spy(params, x, **kw):
        out, cache = forward(params, x, **kw)
        seen.update(params, x=x, out=out)
        return out, cache

    m.engine.forward = spy
    x = torch.rand(2, 3, 2, 1, dtype=torch.float64)
    out = m(x)
    assert np.shares_memory(seen["x"], x.numpy())
    for k, p in m.engine_params().items():
        assert np.shares_memory(seen[k], p.detach().numpy())
    assert np.shares_memory(seen["out"], out.detach().numpy())
    assert not out.is_contiguous()


# --------------------------------------------------------------------------- errors
def test_clear_errors():
    m = MDLSTM(2, 3, 2, cell="graves", backend="numpy", dtype="float32")
    x = torch.rand(1, 3, 3, 2)
    with pytest.raises(TypeError, match=r"x: expected a torch.Tensor, got ndarray"):
        m(x.numpy())
    with pytest.raises(TypeError, match=r"x: expected dtype torch.float32 .* got torch.float64"):
        m(x.double())
    with pytest.raises(ValueError, match=r"x: expected 4 dimensions .* got shape \(3, 3, 2\)"):
        m(x[0])
    with pytest.raises(ValueError, match=r"x: expected 2 channel\(s\)"):
        m(torch.rand(1, 3, 3, 1))
    with pytest.raises(ValueError, match=r"x: expected a tensor on cpu .* got a tensor on meta"):
        m(torch.empty(1, 3, 3, 2, device="meta"))
    with pytest.raises(ValueError, match=r"sizes: expected an integer array of shape \(1, 2\)"):
        m(x, sizes=[[3, 3, 3]])
    with pytest.raises(ValueError, match=r"x: expected a CUDA tensor \(backend='cupy'\)"):
        MDLSTM(2, 3, 2, backend="cupy", dtype="float32")(x)
    with pytest.raises(TypeError, match=r"x: expected dtype torch.float64 .* got torch.float32"):
        MDLSTM(2, 3, 2, backend="numpy", dtype="float32").double()(x)  # .double() switches
    mixed = MDLSTM(2, 3, 2, backend="numpy", dtype="float32")
    mixed.W.data = mixed.W.data.double()                        # one parameter alone: refused
    with pytest.raises(TypeError, match=r"W: expected dtype torch.float32 .* got torch.float64"):
        mixed(x)
    with pytest.raises(ValueError, match=r"backend: expected one of auto, numpy, numba, cupy"):
        MDLSTM(2, 3, 2, backend="tpu")
    with pytest.raises(ValueError, match=r"hidden: expected an integer >= 1, got 0"):
        MDLSTM(2, 0, 2)
    with pytest.raises(ValueError, match=r"params\['U'\]: expected shape \(6, 15\)"):
        m.load_engine_params({**m.engine_params(), "U": np.zeros((2, 2))})


def test_package_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import mdlstm_np\n"
            "try:\n    import mdlstm_np.torch\nexcept ImportError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'pip install "mdlstm_np[torch]"' in r.stdout


# --------------------------------------------------------------------------- GPU
def _cupy_usable():
    try:
        import cupy  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cupy_usable(), reason="needs a CUDA GPU, torch with CUDA and cupy")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    cpu = MultiDirectionalMDLSTM(2, 4, 2, backend="numpy", dtype="float64")
    gpu = MultiDirectionalMDLSTM(2, 4, 2, backend="auto", dtype="float64").cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.rand(3, 5, 4, 2, dtype=torch.float64)
    sizes = torch.tensor([[5, 4], [2, 3], [4, 1]])
    results = []
    for m, xd in ((cpu, x.clone()), (gpu, x.cuda())):
        xd.requires_grad_()
        out = m(xd, sizes=sizes)
        out.pow(2).sum().backward()
        results.append([out.detach().cpu(), xd.grad.cpu()] + [p.grad.cpu() for p in
                                                                m.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------- training
def tf_adam_eps(opt, eps, beta2, t):
    """Make torch's Adam take the engine's (TensorFlow 1.x's) step at step t (1-based).

    torch:  θ −= α/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε_torch)
    engine: θ −= α·√(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + ε)          (``mdlstm_np/optim.py``)
    They are equal when ε_torch = ε / √(1−β₂ᵗ), which torch reads from the group every step.
    """
    for group in opt.param_groups:
        group["eps"] = eps / math.sqrt(1.0 - beta2 ** t)


@pytest.mark.slow
def test_training_follows_the_engines_training():
    """20 Adam steps of MDLSTM -> dense + sigmoid -> MSE written in torch follow the engine's
    own training loop (``train``) from the same parameters on the same batches."""
    # The engine's training pieces are imported by module path (not public names yet).
    from mdlstm_np.demo.models import build_model
    from mdlstm_np.demo.tasks import random_diagonal
    from mdlstm_np.demo.train import train

    steps, batch, size, hidden, lr, seed = 20, 16, 8, 16, 0.01, 0
    res = train(build_model("MD_LSTM", hidden=hidden, backend="numpy", dtype="float32",
                            ln=False), steps=steps, batch=batch, size=size, lr=lr, seed=seed,
                progress=False)
    init = res.initial_params
    rnn = MDLSTM(1, hidden, 2, cell="graves", backend="numpy", dtype="float32")
    rnn.load_engine_params({k[4:]: v for k, v in init.items() if k.startswith("rnn.")})
    V = torch.nn.Parameter(torch.from_numpy(init["head.V"].copy()))  # (H, 1)
    a = torch.nn.Parameter(torch.from_numpy(init["head.a"].copy()))  # (1,)
    opt = torch.optim.Adam([*rnn.parameters(), V, a], lr=lr, betas=(0.9, 0.999))
    data_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])  # as train()
    losses = []
    for step in range(steps):
        x, t, _ = random_diagonal(batch, size, data_rng)
        x, t = torch.from_numpy(x).float(), torch.from_numpy(t).float()
        loss = torch.mean((torch.sigmoid(rnn(x) @ V + a) - t) ** 2)
        opt.zero_grad()
        loss.backward()
        tf_adam_eps(opt, 1e-8, 0.999, step + 1)
        opt.step()
        losses.append(loss.item())
    np.testing.assert_allclose(losses, res.column("overall_loss"), rtol=1e-5)
    final = {f"rnn.{k}": p for k, p in rnn.engine_params().items()}
    final.update({"head.V": V, "head.a": a})
    diff = max(float(np.abs(final[k].detach().numpy() - res.params[k]).max()) for k in final)
    assert diff < 2e-6, diff  # parameters up to ~0.7: float32 rounding after 20 steps (2e-7)


# --------------------------------------------------------------------------- DDP
def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load_example():
    spec = importlib.util.spec_from_file_location("ddp_example", DDP_EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_ddp_step_equals_single_process_step(tmp_path, monkeypatch):
    """One step on 2 processes × 4 samples equals one step of one process on all 8."""
    flags = ["--steps", "1", "--batch", "8", "--size", "5", "--hidden", "4", "--backend",
             "numpy", "--dtype", "float32", "--log-every", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port",
           str(_free_port()), DDP_EXAMPLE, *flags, "--save", str(tmp_path / "ddp.pt")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):  # this process runs the single-process path
        monkeypatch.delenv(k, raising=False)
    threads = torch.get_num_threads()  # main() sets it for its process: restore ours
    try:
        assert _load_example().main([*flags, "--save", str(tmp_path / "one.pt")]) == 0
    finally:
        torch.set_num_threads(threads)
    ddp, one = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "one.pt")
    assert (ddp["world"], one["world"]) == (2, 1)
    assert ddp["losses"][0][1] == pytest.approx(one["losses"][0][1], rel=1e-6)
    for k, p in one["state_dict"].items():
        torch.testing.assert_close(ddp["state_dict"][k], p, rtol=0, atol=1e-6)


def test_ddp_example_bad_flag_is_one_line():
    r = subprocess.run([sys.executable, DDP_EXAMPLE, "--steps", "x"], capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
                                os.environ.get("PYTHONPATH", "")))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("ddp.py: error: ")


# --------------------------------------------------------------------------- like nn.LSTM
BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="needs numba (the fast extra)"))]


def _same_module(a, b, x):
    assert torch.equal(a(x), b(x))
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_deepcopy_pickle_and_torch_save_round_trip(backend, tmp_path):
    import copy
    import pickle

    torch.manual_seed(0)
    for m in (MDLSTM(2, 3, 2, backend=backend, dtype="float64"),
              MultiDirectionalMDLSTM(2, 2, 2, backend=backend, dtype="float64", combine="sum")):
        x = torch.rand(2, 3, 4, 2, dtype=torch.float64)
        _same_module(m, copy.deepcopy(m), x)
        _same_module(m, pickle.loads(pickle.dumps(m)), x)
        torch.save(m, tmp_path / "m.pt")
        _same_module(m, torch.load(tmp_path / "m.pt", weights_only=False), x)
        twin = copy.deepcopy(m)
        with torch.no_grad():
            twin.U.add_(1.0) if hasattr(twin, "U") else twin.d0_U.add_(1.0)
        assert not torch.equal(twin(x), m(x))                      # a copy, not a view


@pytest.mark.parametrize("backend", BACKENDS)
def test_double_float_and_to_switch_the_engines_dtype(backend):
    torch.manual_seed(0)
    m = MDLSTM(2, 3, 2, backend=backend, dtype="float32")
    x = torch.rand(2, 3, 3, 2)
    y32 = m(x)
    m.double()
    assert m.dtype_name == "float64" and all(p.dtype == torch.float64 for p in m.parameters())
    y64 = m(x.double())
    assert y64.dtype == torch.float64 and torch.allclose(y64.float(), y32, atol=1e-6)
    m.to(torch.float32)
    assert m.dtype_name == "float32" and m(x).dtype == torch.float32
    m.float().double().float()
    assert torch.equal(m(x), y32)
    with pytest.raises(TypeError, match=r"float16 is not supported: the engine runs in float32 "
                                        r"or float64"):
        m.half()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_moving_to_cuda_without_cuda_is_one_line_naming_the_fix():
    m = MDLSTM(2, 3, 2, dtype="float32")
    for move in (m.cuda, lambda: m.to("cuda")):
        with pytest.raises(RuntimeError) as info:
            move()
        text = str(info.value)
        assert "\n" not in text and "cannot move to CUDA" in text and "cupy" in text
    assert all(p.device.type == "cpu" for p in m.parameters())    # nothing moved


@pytest.mark.parametrize("first", ["sum", "square"])
def test_double_backward_raises_whatever_the_outer_loss(first):
    m = MDLSTM(2, 3, 2, backend="numpy", dtype="float64")
    x = tiny_input(0)
    out = m(x)
    loss = out.sum() if first == "sum" else (out ** 2).sum()
    with pytest.raises(RuntimeError, match="double backward is not supported"):
        g, = torch.autograd.grad(loss, x, create_graph=True)
        (loss + (g ** 2).sum()).backward()
    out = m(x)                                                     # without create_graph: fine
    g, = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dx_comes_back_in_the_layers_dtype_bit_for_bit(backend):
    """torch would cast a float32 dx back to float64 silently (and gradcheck's tolerance would
    not see it): dx must equal the engine's float64 dx exactly."""
    torch.manual_seed(1)
    m = randomize(MDLSTM(2, 3, 2, backend=backend, dtype="float64"), 1)
    x = tiny_input(1)
    dout = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    m(x).backward(dout)
    layer, _, _ = m._engine_for(x.device)
    params = {k: p.detach().numpy() for k, p in m.engine_params().items()}
    out, cache = layer.forward(params, x.detach().numpy())
    dx, grads = layer.backward(dout.numpy(), cache)
    assert x.grad.dtype == torch.float64 and np.array_equal(x.grad.numpy(), dx)
    for k, p in m.engine_params().items():
        assert np.array_equal(p.grad.numpy(), grads[k]), k


# --------------------------------------------------------------------------- torch.compile
class _Net(torch.nn.Module):
    def __init__(self, backend):
        super().__init__()
        self.rnn = MultiDirectionalMDLSTM(1, 2, 2, backend=backend, dtype="float64",
                                          combine="sum")
        self.head = torch.nn.Linear(2, 1, dtype=torch.float64)

    def forward(self, x):
        return torch.sigmoid(self.head(torch.tanh(self.rnn(x))))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_compile_equals_eager(backend):
    torch.manual_seed(0)
    net = _Net(backend)
    x = torch.rand(2, 4, 3, 1, dtype=torch.float64)
    compiled = torch.compile(net, fullgraph=True)                  # the engine: one opaque op
    yc = compiled(x)
    yc.sum().backward()
    gc = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    ye = net(x)
    ye.sum().backward()
    assert torch.equal(yc, ye)
    for k, p in net.named_parameters():
        torch.testing.assert_close(gc[k], p.grad, rtol=1e-12, atol=1e-14)


def test_the_custom_operator_passes_opcheck():
    from mdlstm_np.torch import engine_forward

    torch.manual_seed(0)
    m = randomize(MDLSTM(2, 2, 2, backend="numpy", dtype="float64"), 2)
    x = tiny_input(2, (2, 3, 2, 2))
    layer, _, key = m._engine_for(x.device)
    params = [getattr(m, m.names[k]).detach().clone().requires_grad_()
              for k in layer.param_shapes()]
    torch.library.opcheck(engine_forward, (x, params, key, None))
    torch.library.opcheck(engine_forward, (x, params, key, torch.tensor([[3, 2], [2, 1]])))
