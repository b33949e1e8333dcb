"""perturb op: reference equality, opcheck, compile, CUDA parity."""
import pytest
import torch

from spectral_xai.ops import perturb, perturb_reference


def _case(dtype, B=3, C=3, H=5, W=7, N=6, S=2, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g, dtype=torch.float64).to(dtype).to(device)
    rows = torch.stack([torch.randint(0, B, (N,), generator=g), torch.randint(0, S, (N,), generator=g),
                        torch.randint(0, 50, (N,), generator=g)], 1).to(device)
    sigmas = torch.rand(S, generator=g, dtype=torch.float64).to(device)
    scales = (torch.rand(B, generator=g, dtype=torch.float64) + 0.5).to(device)
    ids = torch.randint(0, 2**32, (B,), generator=g).to(device)
    return x, rows, sigmas, scales, ids


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mixing", ["additive", "convex", "damping"])
def test_perturb_matches_reference(dtype, mixing):
    x, rows, sigmas, scales, ids = _case(dtype)
    base = torch.randn_like(x) if mixing == "damping" else None
    out = perturb(x, rows, sigmas, scales, ids, base, 99, mixing)
    ref = perturb_reference(x, rows, sigmas, scales, ids, base, 99, mixing)
    assert out.dtype == dtype and out.shape == (rows.shape[0], *x.shape[1:])
    assert torch.equal(out, ref)


def test_perturb_odd_sizes_noncontiguous_and_channels_last():
    x, rows, sigmas, scales, ids = _case(torch.float32, B=2, C=5, H=9, W=11, N=4)
    xs = torch.randn(2, 5, 9, 22)[..., ::2]  # non-contiguous view
    assert not xs.is_contiguous()
    assert torch.equal(perturb(xs, rows, sigmas, scales, ids, None, 3, "convex"),
                       perturb_reference(xs.contiguous(), rows, sigmas, scales, ids, None, 3, "convex"))
    xcl = x.contiguous(memory_format=torch.channels_last)
    out = perturb(xcl, rows, sigmas, scales, ids, None, 3, "additive")
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, perturb(x, rows, sigmas, scales, ids, None, 3, "additive"))
    # a damping baseline given as an expanded (stride 0) view
    base = torch.randn(1, 5, 9, 11).expand(2, -1, -1, -1)
    assert torch.equal(perturb(x, rows, sigmas, scales, ids, base, 0, "damping"),
                       perturb_reference(x, rows, sigmas, scales, ids, base.contiguous(), 0, "damping"))


def test_perturb_empty_and_noise_keys():
    x, rows, sigmas, scales, ids = _case(torch.float32)
    assert perturb(x, rows[:0], sigmas, scales, ids, None, 0, "additive").shape == (0, *x.shape[1:])
    # same (image id, sigma index, sample index) => same noise, whatever the slot of the image
    x2 = torch.zeros(2, 3, 4, 4)
    r = torch.tensor([[0, 0, 7], [1, 0, 7]])
    out = perturb(x2, r, torch.tensor([1.0], dtype=torch.float64), torch.ones(2, dtype=torch.float64),
                  torch.tensor([42, 42]), None, 5, "additive")
    assert torch.equal(out[0], out[1])
    solo = perturb(x2[:1], r[:1], torch.tensor([1.0], dtype=torch.float64), torch.ones(1, dtype=torch.float64),
                   torch.tensor([42]), None, 5, "additive")
    assert torch.equal(out[0], solo[0])


def test_perturb_rejects_bad_arguments():
    x, rows, sigmas, scales, ids = _case(torch.float32)
    with pytest.raises(ValueError, match="mixing"):
        perturb(x, rows, sigmas, scales, ids, None, 0, "bogus")
    with pytest.raises(ValueError, match="rows"):
        perturb(x, rows + 100, sigmas, scales, ids, None, 0, "additive")
    with pytest.raises(ValueError, match="scales"):
        perturb(x, rows, sigmas, scales[:1], ids, None, 0, "additive")


def test_perturb_opcheck_and_channels_last(device):
    x, rows, sigmas, scales, ids = _case(torch.float32, device=device)
    torch.library.opcheck(torch.ops.spectral_xai.perturb.default, (x, rows, sigmas, scales, ids, None, 1, "convex"))
    base = torch.randn_like(x)
    torch.library.opcheck(torch.ops.spectral_xai.perturb.default, (x, rows, sigmas, scales, ids, base, 1, "damping"))
    xcl = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(perturb(xcl, rows, sigmas, scales, ids, None, 1, "convex"),
                       perturb(x, rows, sigmas, scales, ids, None, 1, "convex"))


@pytest.mark.parametrize("mixing", ["additive", "convex", "damping"])
def test_perturb_gradcheck(mixing):
    x, rows, sigmas, scales, ids = _case(torch.float64, B=2, C=2, H=3, W=3, N=5)
    x.requires_grad_(True)
    base = torch.randn_like(x, requires_grad=True) if mixing == "damping" else None
    inputs = (x, rows, sigmas, scales, ids, base, 4, mixing)
    assert torch.autograd.gradcheck(lambda *t: perturb(*t), inputs)
    torch.library.opcheck(torch.ops.spectral_xai.perturb.default, inputs)


def test_perturb_compiles_fullgraph():
    x, rows, sigmas, scales, ids = _case(torch.float32)

    def f(x, rows, sigmas, scales, ids):
        return perturb(x * 2, rows, sigmas, scales, ids, None, 11, "additive") + 1

    compiled = torch.compile(f, fullgraph=True)  # Inductor: C++ codegen around the op
    assert torch.equal(compiled(x, rows, sigmas, scales, ids), f(x, rows, sigmas, scales, ids))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mixing", ["additive", "convex", "damping"])
def test_perturb_cuda_matches_cpu_bitwise(dtype, mixing):
    x, rows, sigmas, scales, ids = _case(dtype, B=4, C=3, H=33, W=17, N=40)
    base = torch.randn_like(x) if mixing == "damping" else None
    cpu = perturb(x, rows, sigmas, scales, ids, base, 2**63 + 5, mixing)
    dev = [t.cuda() for t in (x, rows, sigmas, scales, ids)]
    gpu = perturb(*dev, None if base is None else base.cuda(), 2**63 + 5, mixing)
    assert torch.equal(cpu, gpu.cpu())
