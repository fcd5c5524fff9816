"""Benchmark cases of CTC (``jaxloss/sequence.py``).

Sizes are ``(B, T, N, K)``: batch, time steps, label slots, classes (blank 0).
``(16, 500, 100, 1024)`` float32 ``value_and_grad`` is issue 4's acceptance
figure against ``optax.losses.ctc_loss(...).mean()``; K = 32 and 5000 show how
the cost of optax's one-hot ``[B, N, K]`` label tensor grows with the classes
(jaxloss gathers). Lengths are drawn per sequence (T_b in [0.8 T, T], L_b in
[0.8 N, N]); every alignment is feasible. Peers: optax (paddings built from
the lengths inside the peer, as a caller does) and torch's CPU ``ctc_loss`` on
``log_softmax(logits)`` (time-major), ``reduction="none"`` then the mean. There
is no plain jnp expression of CTC.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from benchmarks.case import Case


def _sequences(rng, size):
  batch, steps, slots, classes = size
  logits = rng.standard_normal((batch, steps, classes), np.float32)
  labels = rng.integers(1, classes, (batch, slots)).astype(np.int32)
  logit_lengths = rng.integers(int(0.8 * steps), steps + 1, batch).astype(np.int32)
  label_lengths = rng.integers(int(0.8 * slots), slots + 1, batch).astype(np.int32)
  return logits, labels, logit_lengths, label_lengths


def _jaxloss(logits, labels, logit_lengths, label_lengths):
  return jl.ctc(logits, labels, logit_lengths=logit_lengths, label_lengths=label_lengths)


def _paddings(lengths, width):
  return (jnp.arange(width)[None, :] >= lengths[:, None]).astype(jnp.float32)


def _optax(logits, labels, logit_lengths, label_lengths):
  logit_paddings, label_paddings = _paddings(logit_lengths, logits.shape[1]), _paddings(label_lengths, labels.shape[1])
  return jnp.mean(optax.losses.ctc_loss(logits, logit_paddings, labels, label_paddings))


def _torch(logits, labels, logit_lengths, label_lengths):
  import torch

  log_probs = torch.log_softmax(logits, dim=-1).transpose(0, 1)
  per_sequence = torch.nn.functional.ctc_loss(
    log_probs, labels.long(), logit_lengths.long(), label_lengths.long(), reduction="none"
  )
  return per_sequence.mean()


CASES = [
  Case(
    "ctc",
    "sequence",
    _jaxloss,
    _sequences,
    sizes=((16, 500, 100, 32), (16, 500, 100, 1024), (16, 500, 100, 5000)),
    optax=_optax,
    torch=_torch,
    dtypes=("float32",),
    quick_sizes=((8, 250, 50, 1024),),
    smoke_size=(2, 12, 4, 6),
  ),
]
