"""Benchmark cases of the segmentation losses (``jaxloss/segmentation.py``).

Inputs are per-pixel class probabilities and one-hot targets of shape
``(B, P, C)`` (batch, pixels, classes); the overlap of each (image, class) is
summed over the pixel axis. Peer: ``optax.losses.dice_loss(...,
apply_softmax=False, axis=1)``, which averages over classes per image and is
reduced with ``jnp.mean``; its ``smooth`` enters a Tversky ratio with
``alpha = beta = 1/2`` (the half-sum denominator), so jaxloss's Dice with
``smooth = s`` is optax's with ``smooth = s / 2``. torch has no Dice loss.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from benchmarks.case import Case, in_float32


def _probs_one_hot(rng, size):
  batch, pixels, classes = size
  logits = rng.standard_normal(size, np.float32)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs = (probs / probs.sum(-1, keepdims=True)).astype(np.float32)
  labels = rng.integers(0, classes, (batch, pixels))
  return probs, np.eye(classes, dtype=np.float32)[labels]


def _tversky(p, t, alpha, beta, smooth):
  overlap = jnp.sum(p * t, axis=1)
  false_positive, false_negative = jnp.sum(p * (1 - t), axis=1), jnp.sum((1 - p) * t, axis=1)
  return jnp.mean(1 - (overlap + smooth) / (overlap + alpha * false_positive + beta * false_negative + smooth))


_SIZES = ((8, 16384, 8), (16, 65536, 8), (16, 262144, 8))
_optax_dice = functools.partial(optax.losses.dice_loss, apply_softmax=False, axis=1)

CASES = [
  Case(
    "dice",
    "segmentation",
    functools.partial(jl.dice, axis=1),
    _probs_one_hot,
    sizes=_SIZES,
    jnp=in_float32(lambda p, t: jnp.mean(1 - (2 * jnp.sum(p * t, axis=1) + 1) / (jnp.sum(p + t, axis=1) + 1))),
    optax=lambda p, t: jnp.mean(_optax_dice(p, t, smooth=0.5)),
    quick_sizes=((8, 16384, 8),),
    smoke_size=(2, 16, 3),
  ),
  Case(
    "tversky",
    "segmentation",
    functools.partial(jl.tversky, alpha=0.3, beta=0.7, axis=1),
    _probs_one_hot,
    sizes=_SIZES[:2],
    jnp=in_float32(lambda p, t: _tversky(p, t, 0.3, 0.7, 1.0)),
    optax=lambda p, t: jnp.mean(_optax_dice(p, t, alpha=0.3, beta=0.7, smooth=1.0)),
    smoke_size=(2, 16, 3),
  ),
]
