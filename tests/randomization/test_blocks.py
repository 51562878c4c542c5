"""The pure allocation generator: the DRBG and stratified permuted blocks of varying size."""

import hashlib
import hmac
import json
from collections import Counter
from itertools import groupby

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trials.randomization.blocks import (
    SEED_BYTES,
    Drbg,
    PlannedSlot,
    severity_levels,
    stratum_key,
    stratum_slots,
)

SEED = bytes(range(SEED_BYTES))
OTHER_SEED = bytes(reversed(range(SEED_BYTES)))
MOOD_ARMS = [("CBT", 1), ("ATTN", 1), ("WAIT", 1)]
MOOD_BLOCKS = [3, 6]
STRATUM = "LDS / PHQ-9 0-14"


def arms_of(slots: list[PlannedSlot]) -> list[str]:
    return [s.arm_code for s in slots]


def blocks_of(slots: list[PlannedSlot]) -> list[list[PlannedSlot]]:
    return [list(group) for _block, group in groupby(slots, key=lambda s: s.block)]


# -- the DRBG ---------------------------------------------------------------------------------


def test_drbg_is_hmac_sha256_in_counter_mode() -> None:
    """An independent computation of the first outputs: the stream is the documented one, so the
    same seed gives the same list on every machine and in every later version."""
    key = hmac.new(SEED, b"stratum A", hashlib.sha256).digest()
    expected = [
        int.from_bytes(hmac.new(key, i.to_bytes(8, "big"), hashlib.sha256).digest()[:8], "big")
        for i in range(3)
    ]
    rng = Drbg(SEED, "stratum A")
    assert [rng.below(1 << 62) for _ in range(3)] == [v % (1 << 62) for v in expected]


def test_drbg_is_deterministic_and_keyed_by_seed_and_label() -> None:
    def draws(seed: bytes, label: str) -> list[int]:
        rng = Drbg(seed, label)
        return [rng.below(1000) for _ in range(20)]

    assert draws(SEED, "a") == draws(SEED, "a")
    assert draws(SEED, "a") != draws(OTHER_SEED, "a")
    assert draws(SEED, "a") != draws(SEED, "b")


@pytest.mark.parametrize("seed", [b"", b"\x00" * 31, b"\x00" * 33])
def test_drbg_refuses_a_seed_of_the_wrong_length(seed: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Drbg(seed, "x")


@pytest.mark.parametrize("n", [0, -1])
def test_below_refuses_an_empty_range(n: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Drbg(SEED, "x").below(n)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 7, 1000, 2**63 + 1])
def test_below_stays_in_range(n: int) -> None:
    rng = Drbg(SEED, f"range {n}")
    values = [rng.below(n) for _ in range(500)]
    assert all(0 <= v < n for v in values)
    if n == 1:
        assert set(values) == {0}


def test_below_rejects_the_biased_tail_instead_of_folding_it() -> None:
    """2**64 = 1 (mod 3): the one value 2**64 - 1 would favour 0 under a plain modulo; it is
    rejected and the next value drawn."""
    rng = Drbg(SEED, "x")
    outputs = iter([(1 << 64) - 1, 5])
    rng._u64 = lambda: next(outputs)  # type: ignore[method-assign]
    assert rng.below(3) == 2
    # 2**64 - 2 is below the limit and kept.
    outputs = iter([(1 << 64) - 2])
    assert rng.below(3) == ((1 << 64) - 2) % 3


@pytest.mark.parametrize("n", [2, 3, 7, 10])
def test_below_is_uniform(n: int) -> None:
    """Chi-square goodness of fit over 50,000 draws with a fixed seed; the threshold is far
    beyond the 0.1% critical value (df 9: 27.9)."""
    draws = 50_000
    rng = Drbg(SEED, f"uniformity {n}")
    counts = Counter(rng.below(n) for _ in range(draws))
    assert set(counts) == set(range(n))
    expected = draws / n
    chi2 = sum((counts[k] - expected) ** 2 / expected for k in range(n))
    assert chi2 < 40, (chi2, counts)


def test_block_sizes_and_positions_in_a_block_are_uniform() -> None:
    """Both block sizes are drawn about equally often, and each arm is equally likely at each
    position of a block of 6 (a biased shuffle would show up here)."""
    slots = stratum_slots(SEED, "uniformity", MOOD_ARMS, MOOD_BLOCKS, 60_000)
    sizes = Counter(block[0].block_size for block in blocks_of(slots))
    total = sum(sizes.values())
    chi2_sizes = sum((sizes[s] - total / 2) ** 2 / (total / 2) for s in MOOD_BLOCKS)
    assert chi2_sizes < 20, sizes
    by_position: Counter[tuple[int, str]] = Counter()
    for block in blocks_of(slots):
        if block[0].block_size == 6:
            by_position.update((k, s.arm_code) for k, s in enumerate(block))
    n_blocks = sum(by_position[(0, arm)] for arm, _ in MOOD_ARMS)
    expected = n_blocks / 3
    chi2 = sum((by_position[(k, arm)] - expected) ** 2 / expected for k in range(6) for arm, _ in MOOD_ARMS)
    assert chi2 < 60, by_position  # df 12: 0.1% critical value 32.9


# -- stratum_slots ----------------------------------------------------------------------------


def test_same_seed_same_list() -> None:
    first = stratum_slots(SEED, STRATUM, MOOD_ARMS, MOOD_BLOCKS, 300)
    assert first == stratum_slots(SEED, STRATUM, MOOD_ARMS, MOOD_BLOCKS, 300)


def test_a_known_list_for_a_known_seed() -> None:
    """A pinned list: the demo and simulations promise the same allocation for the same seed."""
    slots = stratum_slots(b"\x01" * SEED_BYTES, STRATUM, MOOD_ARMS, MOOD_BLOCKS, 300)
    canonical = [[s.stratum, s.position, s.block, s.block_size, s.arm_code] for s in slots]
    digest = hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()
    assert (len(slots), digest) == (300, PINNED_LIST_SHA256)


PINNED_LIST_SHA256 = "330ea3c5c498d910a090ff4ae5855f5d4aa11de77822696a53a1c220b00edfaf"


def test_different_seed_or_stratum_gives_a_different_list() -> None:
    base = arms_of(stratum_slots(SEED, STRATUM, MOOD_ARMS, MOOD_BLOCKS, 300))
    assert base != arms_of(stratum_slots(OTHER_SEED, STRATUM, MOOD_ARMS, MOOD_BLOCKS, 300))
    assert base != arms_of(stratum_slots(SEED, "LDS / PHQ-9 15-27", MOOD_ARMS, MOOD_BLOCKS, 300))
    assert base != arms_of(stratum_slots(SEED, "MAN / PHQ-9 0-14", MOOD_ARMS, MOOD_BLOCKS, 300))


@pytest.mark.parametrize(
    ("arms", "block_sizes"),
    [
        (MOOD_ARMS, MOOD_BLOCKS),
        ([("A", 2), ("B", 1)], [3, 6, 9]),
        ([("A", 1), ("B", 1)], [2, 4, 6]),
        ([("A", 3), ("B", 2), ("C", 1)], [6, 12]),
    ],
)
def test_each_block_holds_the_arms_in_the_allocation_ratio(
    arms: list[tuple[str, int]], block_sizes: list[int]
) -> None:
    slots = stratum_slots(SEED, STRATUM, arms, block_sizes, 500)
    ratio_sum = sum(r for _a, r in arms)
    blocks = blocks_of(slots)
    assert [b[0].block for b in blocks] == list(range(1, len(blocks) + 1))
    for block in blocks:
        size = block[0].block_size
        assert size in block_sizes
        assert len(block) == size
        assert {s.block_size for s in block} == {size}
        assert Counter(s.arm_code for s in block) == {a: r * size // ratio_sum for a, r in arms}
    assert {b[0].block_size for b in blocks} == set(block_sizes)  # every declared size is used


def test_positions_are_contiguous_and_whole_blocks_are_generated() -> None:
    for n in (1, 2, 3, 4, 7, 100, 301):
        slots = stratum_slots(SEED, STRATUM, MOOD_ARMS, MOOD_BLOCKS, n)
        assert [s.position for s in slots] == list(range(1, len(slots) + 1))
        assert n <= len(slots) < n + max(MOOD_BLOCKS)
        assert len(slots) == sum(b[0].block_size for b in blocks_of(slots))
        assert {s.stratum for s in slots} == {STRATUM}


def test_no_slots_requested_gives_none() -> None:
    assert stratum_slots(SEED, STRATUM, MOOD_ARMS, MOOD_BLOCKS, 0) == []


def test_a_block_size_that_is_not_a_multiple_of_the_ratios_is_refused() -> None:
    with pytest.raises(ValueError, match="block size 4 is not a multiple"):
        stratum_slots(SEED, STRATUM, MOOD_ARMS, [3, 4], 10)


def test_block_sizes_vary_unpredictably() -> None:
    """Varying block size: both sizes occur, not in a fixed alternation."""
    sizes = [b[0].block_size for b in blocks_of(stratum_slots(SEED, STRATUM, MOOD_ARMS, MOOD_BLOCKS, 600))]
    assert set(sizes) == {3, 6}
    assert any(a == b for a, b in zip(sizes, sizes[1:], strict=False))
    assert any(a != b for a, b in zip(sizes, sizes[1:], strict=False))


# -- balance (the acceptance point) ---------------------------------------------------


def max_imbalance(slots: list[PlannedSlot], arms: list[tuple[str, int]]) -> float:
    """The largest difference, over every prefix of the sequence, between two arms' counts
    after removing what the allocation ratio expects (for equal ratios: plain counts)."""
    ratio_sum = sum(r for _a, r in arms)
    counts = dict.fromkeys((a for a, _r in arms), 0)
    worst = 0.0
    for n, slot in enumerate(slots, start=1):
        counts[slot.arm_code] += 1
        excess = [counts[a] - n * r / ratio_sum for a, r in arms]
        worst = max(worst, max(excess) - min(excess))
    return worst


@st.composite
def designs(draw: st.DrawFn) -> tuple[list[tuple[str, int]], list[int]]:
    ratios = draw(st.lists(st.integers(1, 4), min_size=2, max_size=5))
    arms = [(f"ARM{k}", r) for k, r in enumerate(ratios)]
    multiples = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4, unique=True))
    return arms, [m * sum(ratios) for m in multiples]


@settings(max_examples=150, deadline=None)
@given(
    design=designs(),
    seed=st.binary(min_size=SEED_BYTES, max_size=SEED_BYTES),
    stratum=st.text(min_size=1, max_size=30),
    n_slots=st.integers(1, 250),
)
def test_arm_counts_never_differ_by_more_than_half_the_largest_block(
    design: tuple[list[tuple[str, int]], list[int]], seed: bytes, stratum: str, n_slots: int
) -> None:
    arms, block_sizes = design
    slots = stratum_slots(seed, stratum, arms, block_sizes, n_slots)
    assert max_imbalance(slots, arms) <= max(block_sizes) / 2
    # At every block boundary the arms are exactly in the allocation ratio.
    ratio_sum = sum(r for _a, r in arms)
    done = 0
    for block in blocks_of(slots):
        done += len(block)
        counts = Counter(s.arm_code for s in slots[:done])
        assert all(counts[a] * ratio_sum == done * r for a, r in arms)


@settings(max_examples=100, deadline=None)
@given(seed=st.binary(min_size=SEED_BYTES, max_size=SEED_BYTES), n_slots=st.integers(1, 300))
def test_equal_ratio_counts_never_differ_by_more_than_half_the_largest_block(
    seed: bytes, n_slots: int
) -> None:
    """The acceptance point in its plain words, on the example trial's design."""
    slots = stratum_slots(seed, STRATUM, MOOD_ARMS, MOOD_BLOCKS, n_slots)
    for n in range(1, len(slots) + 1):
        counts = Counter(s.arm_code for s in slots[:n])
        values = [counts[a] for a, _r in MOOD_ARMS]
        assert max(values) - min(values) <= max(MOOD_BLOCKS) / 2


# -- strata -----------------------------------------------------------------------------------


def test_severity_levels() -> None:
    assert severity_levels("PHQ-9", [15], 27) == [(0, 14, "PHQ-9 0-14"), (15, 27, "PHQ-9 15-27")]
    assert severity_levels("GAD-7", [5, 10], 21) == [
        (0, 4, "GAD-7 0-4"),
        (5, 9, "GAD-7 5-9"),
        (10, 21, "GAD-7 10-21"),
    ]
    assert severity_levels("PHQ-9", [], 27) == [(0, 27, "PHQ-9 0-27")]


def test_stratum_key() -> None:
    assert stratum_key("LDS", "PHQ-9 15-27") == "LDS / PHQ-9 15-27"
    assert stratum_key("LDS", None) == "LDS"
    assert stratum_key(None, "PHQ-9 0-14") == "PHQ-9 0-14"
    assert stratum_key(None, None) == "all"
