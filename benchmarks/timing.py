"""Interleaved steady-state timing and the arithmetic on its samples.

Every implementation of a variant is timed in the same rounds: each round runs
one sample of each, so machine noise (other processes, frequency changes, a
neighbour's cache traffic) hits all of them alike. The orders form a balanced
Latin square (each implementation follows every other equally often), and each
sample is preceded by an untimed call of the same implementation: the previous
one's thread pool may still be spinning (torch's OpenMP workers spin after every
call and measurably slowed whatever ran next on 2 cores). A sample is ``number``
back-to-back calls followed by one synchronisation, long enough
(``min_sample_s``) for the clock to resolve it. Ratios are taken per round and
then the median, so slow drift cancels.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

SLOWER = 1.05  # a ratio above this is "slower than the peer" in the table and the report


@dataclasses.dataclass(frozen=True)
class Budget:
  """How long to measure one variant.

  Every implementation has run once before (its first call, after compiling);
  ``warmup_calls`` more run before one calibrating call sets how many calls make
  a sample of at least ``min_sample_s``. Then as many rounds as fit in
  ``round_budget_s``, within ``[min_rounds, max_rounds]``; a variant whose round
  takes over ``long_round_s`` (10^8 elements) gets ``min_rounds_long``: its
  per-call times are long and steady.
  """

  min_rounds: int = 5
  max_rounds: int = 25
  round_budget_s: float = 1.0
  min_sample_s: float = 0.005
  warmup_calls: int = 0
  long_round_s: float = 1.0
  min_rounds_long: int = 3
  # Calls slower than this settle with a pause instead of an untimed call (a ms of
  # spinning threads is noise to them, and a second call would cost seconds).
  settle_call_max_s: float = 0.1
  settle_pause_s: float = 0.01


QUICK = Budget(min_rounds=3, max_rounds=9, round_budget_s=0.3, min_sample_s=0.002)
FULL = Budget()
SMOKE = Budget(min_rounds=2, max_rounds=2, round_budget_s=0.0, min_sample_s=0.0)


@dataclasses.dataclass
class Timed:
  """One implementation ready to time: ``call()`` runs it once, ``sync(out)`` waits for it."""

  name: str
  call: Callable[[], Any]
  sync: Callable[[Any], None]


def _sample(timed: Timed, number: int) -> float:
  """Seconds per call over ``number`` back-to-back calls, synchronised once at the end."""
  start = time.perf_counter()
  for _ in range(number):
    out = timed.call()
  timed.sync(out)
  return (time.perf_counter() - start) / number


def balanced_orders(count: int) -> list[list[int]]:
  """A Williams design: orders of ``range(count)`` in which each index follows each other one equally often."""
  first = [0]
  for k in range(1, count):
    first.append((k + 1) // 2 if k % 2 else count - k // 2)
  rows = [[(i + shift) % count for i in first] for shift in range(count)]
  return rows if count % 2 == 0 else rows + [row[::-1] for row in rows]


def interleaved(timed: Sequence[Timed], budget: Budget) -> dict[str, list[float]]:
  """Per-call seconds of each implementation, one entry per round, rounds interleaved."""
  gc_was_enabled = gc.isenabled()
  gc.disable()
  try:
    single = {}
    for t in timed:
      for _ in range(budget.warmup_calls):
        t.sync(t.call())
      single[t.name] = _sample(t, 1)
    number = {name: max(1, math.ceil(budget.min_sample_s / max(s, 1e-9))) for name, s in single.items()}
    round_s = sum(number[name] * single[name] for name in single)
    least = budget.min_rounds_long if round_s > budget.long_round_s else budget.min_rounds
    rounds = int(np.clip(budget.round_budget_s / max(round_s, 1e-9), least, budget.max_rounds))
    samples: dict[str, list[float]] = {t.name: [] for t in timed}
    orders = balanced_orders(len(timed))
    for r in range(rounds):
      for t in (timed[i] for i in orders[r % len(orders)]):
        if single[t.name] < budget.settle_call_max_s:
          t.sync(t.call())
        else:
          time.sleep(budget.settle_pause_s)
        samples[t.name].append(_sample(t, number[t.name]))
    return samples
  finally:
    if gc_was_enabled:
      gc.enable()


def summary(seconds: Sequence[float]) -> dict[str, float | int]:
  """Median, quartiles and extremes of per-call times (seconds)."""
  s = np.asarray(seconds, dtype=np.float64)
  q1, median, q3 = np.percentile(s, [25, 50, 75])
  return {
    "median_s": float(median),
    "q1_s": float(q1),
    "q3_s": float(q3),
    "min_s": float(s.min()),
    "max_s": float(s.max()),
    "rounds": len(s),
  }


def paired_ratio(ours: Sequence[float], peer: Sequence[float]) -> float:
  """Median over rounds of ``ours[r] / peer[r]``: > 1 means ours is slower.

  Samples of one round were taken back to back, so the per-round ratio cancels
  machine noise that a ratio of two medians keeps.
  """
  if len(ours) != len(peer) or not len(ours):
    raise ValueError(f"paired_ratio needs two equally long non-empty series, got {len(ours)} and {len(peer)}")
  return float(np.median(np.asarray(ours, np.float64) / np.asarray(peer, np.float64)))


def gbps(num_bytes: int, seconds: float) -> float:
  """Achieved bandwidth in GB/s (10**9 bytes per second)."""
  return num_bytes / seconds / 1e9


def bandwidth_fraction(achieved_gbps: float, probe_gbps: float | None) -> float | None:
  """Achieved over probed bandwidth (None without a probe)."""
  return None if not probe_gbps else achieved_gbps / probe_gbps
