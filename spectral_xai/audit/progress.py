"""Rank 0's progress and log lines of an audit run (none with --quiet)."""
from __future__ import annotations

import sys
import time

from . import distributed
from .config import AuditConfig


class Progress:
    """Rank 0's progress unless --quiet: a tqdm bar (images/s, ETA) on a terminal, else one line per shard
    on stderr with the rate and ETA, so a log shows the run advancing."""

    def __init__(self, total: int, n_shards: int, cfg: AuditConfig, ranks: distributed.Ranks):
        from tqdm.auto import tqdm

        self.show = ranks.is_main and not cfg.quiet
        self.tty = sys.stderr.isatty()
        self.total, self.n_shards, self.done, self.shards = total, n_shards, 0, 0
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, unit="img", desc="audit", disable=not (self.show and self.tty),
                        dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int) -> None:
        self.bar.update(n)
        self.done += n
        self.shards += 1
        if self.show and not self.tty:
            elapsed = time.perf_counter() - self.t0
            rate = self.done / elapsed if elapsed > 0 else float("inf")
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"audit: shard {self.shards}/{self.n_shards}, {self.done}/{self.total} images, {rate:.3g} img/s, "
                  f"elapsed {duration(elapsed)}, ETA {duration(eta)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def log(cfg: AuditConfig, ranks: distributed.Ranks, msg: str) -> None:
    if ranks.is_main and not cfg.quiet:
        print(msg, flush=True)


def warn(ranks: distributed.Ranks, msg: str) -> None:
    """A warning line on rank 0's stderr, also with --quiet."""
    if ranks.is_main:
        print(f"spectral_xai audit: warning: {msg}", file=sys.stderr, flush=True)
