"""Index and argument checks that both backends run (the shared op preparation): a bad row, image id or
device gives the same ValueError naming the argument on CPU and CUDA, never a bad memory access."""
import pytest
import torch

from spectral_xai.ops import accumulate_, perturb, perturb_reference, radial_power_spectrum, rank_normalize

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]   # skipped without a GPU (conftest)


def _args(device, B=3, S=2, N=5):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 2, 4, 3, generator=g)
    rows = torch.stack([torch.arange(N) % B, torch.arange(N) % S, torch.arange(N) * 7], 1)
    sigmas = torch.rand(S, generator=g, dtype=torch.float64)
    scales = torch.ones(B, dtype=torch.float64)
    ids = torch.tensor([5, 0, 2**32 - 1])[:B]
    return [t.to(device) for t in (x, rows, sigmas, scales, ids)]


def _with_row(rows, r, col, value):
    rows = rows.clone()
    rows[r, col] = value
    return rows


ROW_CASES = [  # (column, bad value, message)
    (0, 3, "image slot 3 of row 2 is outside \\[0, 3\\)"),
    (0, -1, "image slot -1 of row 2 is outside \\[0, 3\\)"),
    (1, 2, "sigma index 2 of row 2 is outside \\[0, 2\\)"),
    (1, -5, "sigma index -5 of row 2 is outside \\[0, 2\\)"),
    (2, 2**32, "sample index 4294967296 of row 2 is outside \\[0, 2\\^32\\)"),
    (2, -1, "sample index -1 of row 2 is outside \\[0, 2\\^32\\)"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("col, value, message", ROW_CASES)
@pytest.mark.parametrize("mixing", ["additive", "damping"])
def test_bad_rows_raise_value_error_naming_the_row(device, col, value, message, mixing):
    x, rows, sigmas, scales, ids = _args(device)
    bad = _with_row(_with_row(rows, 2, col, value), 4, col, value)  # the first bad row is reported
    with pytest.raises(ValueError, match=f"argument 'rows': {message}"):
        perturb(x, bad, sigmas, scales, ids, None, 1, mixing)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bad_id", [-1, 2**32])
def test_bad_image_ids_raise_even_in_unused_slots_and_without_rows(device, bad_id):
    x, rows, sigmas, scales, ids = _args(device)
    ids = ids.clone()
    ids[1] = bad_id
    used = rows[rows[:, 0] != 1]
    for r in (used, rows[:0]):
        with pytest.raises(ValueError, match=f"argument 'image_ids': id {bad_id} at position 1 is outside"):
            perturb(x, r, sigmas, scales, ids, None, 1, "additive")


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_index_tensors_are_read_correctly(device):
    x, rows, sigmas, scales, ids = _args(device)
    rows_t = rows.t().contiguous().t()  # (N, 3) with strides (1, N)
    sig_s = torch.stack([sigmas, sigmas], 1)[:, 0]
    sc_s = torch.stack([scales, scales], 1)[:, 1]
    ids_s = torch.stack([ids, ids], 1)[:, 0]
    assert not any(t.is_contiguous() for t in (rows_t, sig_s, sc_s, ids_s))
    got = perturb(x, rows_t, sig_s, sc_s, ids_s, None, 9, "convex")
    want = perturb_reference(*(t.cpu() for t in (x, rows, sigmas, scales, ids)), None, 9, "convex")
    assert torch.equal(got.cpu(), want)


@pytest.mark.parametrize("device", DEVICES)
def test_shape_dtype_checks_name_the_argument(device):
    x, rows, sigmas, scales, ids = _args(device)
    cases = [
        ("rows", (x, rows.int(), sigmas, scales, ids, None, "additive")),
        ("rows", (x, rows[:, :2], sigmas, scales, ids, None, "additive")),
        ("sigmas", (x, rows, sigmas.float(), scales, ids, None, "additive")),
        ("scales", (x, rows, sigmas, scales[:2], ids, None, "additive")),
        ("image_ids", (x, rows, sigmas, scales, ids.int(), None, "additive")),
        ("x", (x[0], rows, sigmas, scales, ids, None, "additive")),
        ("baseline", (x, rows, sigmas, scales, ids, x[:2], "damping")),
        ("baseline", (x, rows, sigmas, scales, ids, x, "additive")),
        ("mixing", (x, rows, sigmas, scales, ids, None, "bogus")),
    ]
    for name, (xx, r, s, sc, i, base, mixing) in cases:
        with pytest.raises(ValueError, match=f"argument '{name}'"):
            perturb(xx, r, s, sc, i, base, 0, mixing)


@pytest.mark.cuda
def test_index_tensors_on_another_device_are_named():
    x, rows, sigmas, scales, ids = _args("cuda")
    for k, name in enumerate(["rows", "sigmas", "scales", "image_ids"]):
        args = [rows, sigmas, scales, ids]
        args[k] = args[k].cpu()
        with pytest.raises(ValueError, match=f"argument '{name}': expected a tensor on cuda"):
            perturb(x, *args, None, 0, "additive")


@pytest.mark.parametrize("device", DEVICES)
def test_spectrum_checks_on_both_backends(device):
    with pytest.raises(ValueError, match="argument 'maps': contains NaN"):
        rank_normalize(torch.tensor([[[0.0, float("nan")]]], device=device))
    for op in (rank_normalize, radial_power_spectrum):
        with pytest.raises(ValueError, match="argument 'maps'"):
            op(torch.zeros(6, device=device))                       # no map axis
        with pytest.raises(ValueError, match="argument 'maps'"):
            op(torch.zeros(1, 2, 3, dtype=torch.int64, device=device))
    # 2^31 pixels per map: refused before any memory is touched (an expanded view of one value)
    huge = torch.zeros(1, 1, 1, device=device).expand(1, 2**16, 2**15)
    with pytest.raises(ValueError, match="fewer than 2\\^31 elements"):
        rank_normalize(huge)
    with pytest.raises(ValueError, match="argument 'maps'.*\\(B, D, H, W\\)"):
        radial_power_spectrum(torch.zeros(1, 2, 2, 2, 2, device=device))   # signals, images, volumes only


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("slots, message", [([0, 0, 3], "slot 3 of row 2 is outside"),
                                            ([0, -1, 1], "slot -1 of row 1 is outside"),
                                            ([0, 1, 0], "not contiguous")])
def test_accumulate_slot_checks_on_both_backends(device, slots, message):
    """The CPU kernel checks slots while it finds the segments; a device checks them before its kernel, so a
    bad slot is a ValueError naming `slots`, never an out-of-bounds write."""
    g = torch.ones(3, 2, 4, 4, device=device)
    P = 3
    mean = torch.zeros(P, 1, 4, 4, dtype=torch.float64, device=device)
    empty = torch.empty(0, dtype=torch.float64, device=device)
    counts = torch.zeros(P, dtype=torch.int64, device=device)
    scalars = [torch.zeros(P, dtype=torch.float64, device=device) for _ in range(2)]
    with pytest.raises(ValueError, match=f"argument 'slots'.*{message}"):
        accumulate_(g, torch.tensor(slots, device=device), empty, mean, counts, empty, *scalars, 8)
    assert int(counts.sum()) == 0 and not mean.any()                # nothing was written
