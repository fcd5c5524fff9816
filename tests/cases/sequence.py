"""Registry cases for CTC: sequences of 5 steps over 4 classes, up to 2 labels."""

import numpy as np

import jaxloss as jl
from registry import Case

T, K, N = 5, 4, 2


def _sequences(blank):
  def make(rng, batch):
    labels = rng.integers(0, K - 1, size=(*batch, N))
    labels = labels + (labels >= blank)  # never the blank
    labels[..., 1] = np.where(rng.uniform(size=batch) < 0.3, labels[..., 0], labels[..., 1])  # some repeats
    return rng.normal(size=(*batch, T, K)), labels

  def extremes(rng, batch):
    logits, labels = make(rng, batch)
    repeated = np.broadcast_to(labels[..., :1], labels.shape).copy()
    return [
      (1e4 * logits, labels),
      (np.zeros_like(logits), repeated),
      (np.full_like(logits, 1e-30), labels),
      (-1e4 * logits, repeated),
    ]

  return make, extremes


def _lengths(shortest):
  """Lengths that are always feasible (``shortest`` >= 2N - 1 steps) or sometimes not."""

  def array_kwargs(rng, batch):
    return {
      "logit_lengths": rng.integers(shortest, T + 1, size=batch),
      "label_lengths": rng.integers(0, N + 1, size=batch),
    }

  return array_kwargs


CASES = [
  Case("ctc", jl.ctc, *_sequences(0), array_kwargs=_lengths(2 * N - 1)),
  Case(
    "ctc-blank3-zero_infinity",
    jl.ctc,
    *_sequences(K - 1),
    kwargs={"blank": K - 1, "zero_infinity": True},
    array_kwargs=_lengths(1),
  ),
]
