"""torch.distributed for the audit: ranks from torchrun's environment, gloo on CPU and nccl on GPU."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False     # this process created the group and must destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device_type: str) -> Ranks:
    """Join the process group that torchrun describes (WORLD_SIZE > 1), or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), local, False)
    if device_type == "cuda":
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    else:
        dist.init_process_group("gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), local, True)


def barrier(r: Ranks) -> None:
    if r.world > 1:
        dist.barrier()


def broadcast(r: Ranks, obj):
    """rank 0's ``obj`` on every rank."""
    if r.world <= 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(r: Ranks, obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if r.world <= 1:
        return [obj]
    out = [None] * r.world
    dist.all_gather_object(out, obj)
    return out


def gather_digest(r: Ranks, hexdigest: str, device: torch.device) -> list[str]:
    """Every rank's hex digest (equal lengths), in rank order, on every rank: all_gather of its bytes as a
    uint8 tensor on ``device`` (a CUDA tensor for nccl, a CPU one for gloo)."""
    if r.world <= 1:
        return [hexdigest]
    mine = torch.tensor(list(bytes.fromhex(hexdigest)), dtype=torch.uint8, device=device)
    out = [torch.empty_like(mine) for _ in range(r.world)]
    dist.all_gather(out, mine)
    return [bytes(t.cpu().tolist()).hex() for t in out]


def finish(r: Ranks) -> None:
    if r.owns_group and dist.is_initialized():
        dist.destroy_process_group()
