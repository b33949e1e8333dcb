"""The ops' fake kernels on the cuda device type (no GPU needed): what torch.compile/export see for
CUDA inputs is the device, shape, dtype and memory format the CUDA kernels return."""
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from spectral_xai import ops


def _perturb_inputs(device, memory_format=torch.contiguous_format, dtype=torch.float16):
    x = torch.empty(3, 2, 5, 7, device=device, dtype=dtype).contiguous(memory_format=memory_format)
    rows = torch.zeros(6, 3, dtype=torch.int64, device=device)
    sigmas = torch.ones(2, dtype=torch.float64, device=device)
    scales = torch.ones(3, dtype=torch.float64, device=device)
    ids = torch.zeros(3, dtype=torch.int64, device=device)
    return x, rows, sigmas, scales, ids


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_perturb_fake_on_cuda_matches_the_kernel_contract(memory_format):
    with FakeTensorMode():
        x, rows, sigmas, scales, ids = _perturb_inputs("cuda", memory_format)
        out = ops.perturb(x, rows, sigmas, scales, ids, None, 2**64 - 1, "additive")
        assert out.device.type == "cuda" and out.dtype == torch.float16 and out.shape == (6, 2, 5, 7)
        assert out.is_contiguous(memory_format=memory_format)


def test_spectrum_fakes_on_cuda():
    with FakeTensorMode():
        for dtype, want in [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                            (torch.float32, torch.float32), (torch.float64, torch.float64)]:
            maps = torch.empty(4, 224, 224, device="cuda", dtype=dtype)
            spec = ops.radial_power_spectrum(maps)
            assert spec.device.type == "cuda" and spec.shape == (4, 159) and spec.dtype == want
            ranks = ops.rank_normalize(maps[:, ::2])  # non-contiguous in, contiguous out
            assert ranks.device.type == "cuda" and ranks.dtype == dtype and ranks.is_contiguous()


class _Explain(torch.nn.Module):
    def forward(self, x, rows, sigmas, scales, ids):
        xt = ops.perturb(x * 2, rows, sigmas, scales, ids, None, 2**63 + 5, "convex")
        maps = xt.float().sum(1)
        return ops.radial_power_spectrum(ops.rank_normalize(maps))


def test_export_traces_the_ops_on_fake_cuda_inputs():
    """torch.export (dynamo, full graph) of a pipeline of the three ops on fake CUDA tensors."""
    with FakeTensorMode():
        inputs = _perturb_inputs("cuda", torch.channels_last, torch.float32)
        ep = torch.export.export(_Explain(), inputs)
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    for name in ("perturb", "rank_normalize", "radial_power_spectrum"):
        assert getattr(torch.ops.spectral_xai, name).default in targets
    seed_arg = next(n for n in ep.graph.nodes if n.target == torch.ops.spectral_xai.perturb.default).args[6]
    assert seed_arg == 2**63 + 5 - 2**64  # the uint64 seed reaches the schema as its int64 bits
    out = next(n for n in ep.graph.nodes if n.op == "output").args[0][0].meta["val"]
    assert out.device.type == "cuda" and out.shape == (6, ops.radial_bins(5, 7))
