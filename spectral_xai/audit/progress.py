"""Rank 0's progress and log lines of an audit run (none with --quiet)."""
from __future__ import annotations

import sys
import time

from . import distributed
from .config import AuditConfig


STEP_PIXELS = 224 * 224     # a shard is computed in steps of about this many input pixels (one 224-px image)


def step_images(size: int) -> int:
    """Images per computing step within a shard at input ``size``: max(1, STEP_PIXELS // size²) (1 at 224 px,
    64 at 28 px).  A function of the configuration only, so a run's numbers never depend on the terminal."""
    return max(1, STEP_PIXELS // (size * size))


class Progress:
    """Rank 0's progress unless --quiet: a tqdm bar (images/s, ETA) on a terminal, else a line on stderr after
    every computing step (:func:`step_images`, at most a shard) with the shard being computed, the images done,
    the shards whose write has succeeded, the rate and the ETA, so a log shows the run advancing within a shard."""

    def __init__(self, total: int, n_shards: int, cfg: AuditConfig, ranks: distributed.Ranks):
        from tqdm.auto import tqdm

        self.show = ranks.is_main and not cfg.quiet
        self.tty = sys.stderr.isatty()
        self.total, self.n_shards, self.done, self.shards, self.started = total, n_shards, 0, 0, 0
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, unit="img", desc="audit", disable=not (self.show and self.tty),
                        dynamic_ncols=True, smoothing=0.1)

    def next_shard(self) -> None:
        """The next shard starts computing."""
        self.started += 1

    def shard_written(self) -> None:
        """A shard's write has succeeded (only then is it counted as written)."""
        self.shards += 1

    def advance(self, n: int) -> None:
        """``n`` more images computed (or failed to load) in the current shard."""
        self.bar.update(n)
        self.done += n
        if self.show and not self.tty and n:
            elapsed = time.perf_counter() - self.t0
            rate = self.done / elapsed if elapsed > 0 else float("inf")
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"audit: shard {min(max(self.started, 1), self.n_shards)}/{self.n_shards}, {self.done}/{self.total} "
                  f"images, {self.shards} shards written, {rate:.3g} img/s, elapsed {duration(elapsed)}, "
                  f"ETA {duration(eta)}", file=sys.stderr, flush=True)

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
