"""Benchmark cases of the segmentation losses (``jaxloss/segmentation.py``).

Inputs are per-pixel class logits and one-hot targets of shape ``(B, P, C)``
(batch, pixels, classes); each case applies the softmax over classes and takes
the overlap of each (image, class) over the pixel axis. The softmax is part of
every implementation because optax's ``dice_loss`` cannot be jitted with
``apply_softmax=False`` (it checks the probabilities with a Python ``if``), so
its peer is ``dice_loss(logits, targets, axis=(1,))``: the mean over classes
per image, reduced with ``jnp.mean``. Its ``smooth`` enters a Tversky ratio
with ``alpha = beta = 1/2`` (a half-sum denominator), so jaxloss's Dice with
``smooth = s`` is optax's with ``smooth = s / 2``. torch has no Dice loss.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from benchmarks.case import Case, in_float32


def _logits_one_hot(rng, size):
  batch, pixels, classes = size
  labels = rng.integers(0, classes, (batch, pixels))
  return rng.standard_normal(size, np.float32), np.eye(classes, dtype=np.float32)[labels]


def _softmax_first(loss):
  return lambda x, t: loss(jax.nn.softmax(x, axis=-1), t)


def _tversky(p, t, alpha, beta, smooth):
  overlap = jnp.sum(p * t, axis=1)
  false_positive, false_negative = jnp.sum(p * (1 - t), axis=1), jnp.sum((1 - p) * t, axis=1)
  return jnp.mean(1 - (overlap + smooth) / (overlap + alpha * false_positive + beta * false_negative + smooth))


def _dice(p, t, smooth):
  return jnp.mean(1 - (2 * jnp.sum(p * t, axis=1) + smooth) / (jnp.sum(p + t, axis=1) + smooth))


_SIZES = ((8, 16384, 8), (16, 262144, 8))

CASES = [
  Case(
    "dice",
    "segmentation",
    _softmax_first(functools.partial(jl.dice, axis=1)),
    _logits_one_hot,
    sizes=_SIZES,
    jnp=in_float32(_softmax_first(lambda p, t: _dice(p, t, 1.0))),
    optax=lambda x, t: jnp.mean(optax.losses.dice_loss(x, t, smooth=0.5, axis=(1,))),
    quick_sizes=((8, 16384, 8),),
    smoke_size=(2, 16, 3),
  ),
  Case(
    "tversky",
    "segmentation",
    _softmax_first(functools.partial(jl.tversky, alpha=0.3, beta=0.7, axis=1)),
    _logits_one_hot,
    sizes=_SIZES[1:],
    dtypes=("float32",),
    jnp=in_float32(_softmax_first(lambda p, t: _tversky(p, t, 0.3, 0.7, 1.0))),
    optax=lambda x, t: jnp.mean(optax.losses.dice_loss(x, t, alpha=0.3, beta=0.7, smooth=1.0, axis=(1,))),
    smoke_size=(2, 16, 3),
  ),
]
