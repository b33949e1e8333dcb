"""Run by tests/integrations/test_torchmetrics.py under torchrun (gloo, 2 processes): every rank scores its
share of the same seeded maps with the metrics and writes the synced results of compute*() to OUT/rank{r}.json."""
import json
import sys

import torch
import torch.distributed as dist

from spectral_xai.integrations.torchmetrics import ExpectedFrequency, ExplanationGap


def maps(seed: int, n: int = 7, size: int = 10) -> torch.Tensor:
    return torch.randn(n, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    a, b, ref = maps(0), maps(1), maps(2)
    mine = slice(rank, None, world)                   # 4 maps on rank 0, 3 on rank 1
    ef = ExpectedFrequency(size=(10, 10))
    cross = ExpectedFrequency(rank_normalize=False, size=(10, 10))
    gap = ExplanationGap(exclude_dc=True, size=(10, 10))
    for i in range(0, 4, 2):                          # uneven batches
        ef.update(a[mine][i:i + 2])
        cross.update(a[mine][i:i + 2], b[mine][i:i + 2])
        gap.update(ref[mine][i:i + 2], a[mine][i:i + 2])
    res = {"ef": ef.compute().item(), "ef_stats": [t.item() for t in ef.compute_stats()],
           "ef_spectrum": ef.compute_spectrum().tolist(), "cross": cross.compute().item(),
           "cross_spectrum": cross.compute_spectrum().tolist(), "gap": gap.compute().item(),
           "gap_stats": [t.item() for t in gap.compute_stats()],
           "gap_spectra": [s.tolist() for s in gap.compute_spectrum()],
           "local_count": ef.count.item()}        # the local state is restored after each sync
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(res, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
