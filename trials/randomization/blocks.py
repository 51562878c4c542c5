"""Stratified permuted blocks of varying size, drawn from a seeded cryptographic source.

Pure: no database, no Flask. Given the same seed, arms, block sizes and strata, the same list
comes out on every machine; without the seed, the next assignment cannot be predicted.
"""

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

SEED_BYTES = 32


class Drbg:
    """A deterministic random bit generator: HMAC-SHA256 in counter mode keyed by the seed and a
    label (one independent stream per stratum). Integers are drawn without modulo bias."""

    def __init__(self, seed: bytes, label: str) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"the seed must be {SEED_BYTES} bytes")
        self._key = hmac.new(seed, label.encode("utf-8"), hashlib.sha256).digest()
        self._counter = 0

    def _u64(self) -> int:
        block = hmac.new(self._key, self._counter.to_bytes(8, "big"), hashlib.sha256).digest()
        self._counter += 1
        return int.from_bytes(block[:8], "big")

    def below(self, n: int) -> int:
        """A uniform integer in [0, n)."""
        if n <= 0:
            raise ValueError("n must be positive")
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            value = self._u64()
            if value < limit:
                return value % n


@dataclass(frozen=True)
class PlannedSlot:
    stratum: str
    position: int  # 1-based, within the stratum
    block: int  # 1-based, within the stratum
    block_size: int
    arm_code: str


def stratum_slots(
    seed: bytes,
    stratum: str,
    arms: Sequence[tuple[str, int]],
    block_sizes: Sequence[int],
    n_slots: int,
) -> list[PlannedSlot]:
    """At least `n_slots` slots (whole blocks) for one stratum.

    Each block's size is drawn uniformly from `block_sizes`; the block holds each arm
    `ratio x size / sum(ratios)` times, in an order shuffled by Fisher-Yates.
    """
    ratio_sum = sum(ratio for _code, ratio in arms)
    for size in block_sizes:
        if size % ratio_sum:
            raise ValueError(f"block size {size} is not a multiple of the allocation ratios' sum {ratio_sum}")
    rng = Drbg(seed, stratum)
    slots: list[PlannedSlot] = []
    block = 0
    while len(slots) < n_slots:
        block += 1
        size = block_sizes[rng.below(len(block_sizes))]
        content = [code for code, ratio in arms for _ in range(ratio * size // ratio_sum)]
        for i in range(len(content) - 1, 0, -1):
            j = rng.below(i + 1)
            content[i], content[j] = content[j], content[i]
        start = len(slots)
        slots.extend(PlannedSlot(stratum, start + k + 1, block, size, arm) for k, arm in enumerate(content))
    return slots


def severity_levels(instrument: str, cut_points: Sequence[int], maximum: int) -> list[tuple[int, int, str]]:
    """Baseline severity strata as (low, high, label), e.g. cut point 15 on the PHQ-9:
    (0, 14, "PHQ-9 0-14") and (15, 27, "PHQ-9 15-27")."""
    edges = [0, *cut_points, maximum + 1]
    return [(lo, hi - 1, f"{instrument} {lo}-{hi - 1}") for lo, hi in zip(edges, edges[1:], strict=False)]


def stratum_key(site: str | None, severity: str | None) -> str:
    """The name of a stratum, e.g. "LDS / PHQ-9 15-27"; "all" when the trial is not stratified."""
    parts = [p for p in (site, severity) if p]
    return " / ".join(parts) or "all"
