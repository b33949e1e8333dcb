"""engine.plan_rows against a plain Python loop over the active slots."""
import torch

from spectral_xai.engine import plan_rows


def rows_by_loop(active, counts, per_round, limit, S):
    out = []
    for p in active.tolist():
        cap = int(limit[p]) if isinstance(limit, torch.Tensor) else limit
        for i in range(int(counts[p]), min(int(counts[p]) + per_round, cap)):
            out.append((p // S, p % S, i))
    return torch.tensor(out, dtype=torch.int64).reshape(-1, 3)


def test_plan_rows_matches_a_loop_over_slots():
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        P = int(torch.randint(1, 30, (1,), generator=g))
        S = int(torch.randint(1, 5, (1,), generator=g))
        limits = torch.randint(1, 20, (P,), generator=g)
        counts = torch.minimum(torch.randint(0, 20, (P,), generator=g), limits)  # some slots already full
        k = int(torch.randint(0, P + 1, (1,), generator=g))
        active = torch.randperm(P, generator=g)[:k].sort().values
        per_round = int(torch.randint(1, 10, (1,), generator=g))
        limit = limits if trial % 2 else int(limits.max())
        got = plan_rows(active, counts, per_round, limit, S)
        assert got.dtype == torch.int64
        assert torch.equal(got, rows_by_loop(active, counts, per_round, limit, S))
