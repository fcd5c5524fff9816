"""Benchmark cases of the classification losses (``jaxloss/classification.py``).

Two shapes of loss. Row-wise losses over classes (cross-entropy, poly, the
multi-class hinge) take logits ``[B, C]`` and integer labels ``[B]``
(``multilabel_margin``: target lists ``[B, C]`` padded with -1): sizes are
``(B, C)``, and ``(4096, 32768)`` float32 ``value_and_grad`` of
``cross_entropy`` is issue 3's acceptance figure against
``optax.losses.softmax_cross_entropy_with_integer_labels``. Binary losses
(BCE with logits, sigmoid focal, hinge) are elementwise and memory-bound, sized
in elements up to 10^8 for BCE. Peers: optax where it has the loss, reduced with
``jnp.mean``; ``torch.nn.functional`` where it has it (torchvision's focal loss
is not a torch peer: torchvision is not a dependency).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss as jl
from benchmarks.case import Case, in_float32, torch_functional


def _logits_labels(rng, size):
  batch, classes = size
  logits = (2 * rng.standard_normal((batch, classes), np.float32)).astype(np.float32)
  return logits, rng.integers(0, classes, batch).astype(np.int32)


def _logits_targets(rng, n):
  return rng.standard_normal(n, np.float32), (rng.random(n) < 0.5).astype(np.float32)


def _probs_targets(rng, n):
  return rng.uniform(0.01, 0.99, n).astype(np.float32), (rng.random(n) < 0.5).astype(np.float32)


def _scores_signs(rng, n):
  return rng.standard_normal(n, np.float32), np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)


def _scores_target_lists(rng, size):
  """Scores ``[B, C]`` and each example's targets (a random set of distinct classes, in random order) padded with -1."""
  batch, classes = size
  scores = (2 * rng.standard_normal((batch, classes), np.float32)).astype(np.float32)
  labels = np.full((batch, classes), -1, np.int32)
  for row, count in zip(labels, rng.integers(0, classes // 4 + 1, batch), strict=True):
    row[:count] = rng.permutation(classes)[:count]
  return scores, labels


def _neg_log_softmax_of_label(x, y):
  """Per-example ``lse(x) - x_y``, the plain expression of integer-label cross-entropy."""
  return jax.nn.logsumexp(x, axis=-1) - jnp.take_along_axis(x, y[:, None], axis=-1)[:, 0]


def _poly(x, y, epsilon):
  p_y = jnp.take_along_axis(jax.nn.softmax(x, axis=-1), y[:, None], axis=-1)[:, 0]
  return jnp.mean(_neg_log_softmax_of_label(x, y) + epsilon * (1 - p_y))


def _crammer_singer(s, y):
  s_y = jnp.take_along_axis(s, y[:, None], axis=-1)[:, 0]
  others = jnp.where(jax.nn.one_hot(y, s.shape[-1], dtype=bool), -jnp.inf, s)
  return jnp.mean(jax.nn.relu(1 + jnp.max(others, axis=-1) - s_y))


def _log_probs_labels(rng, size):
  logits, labels = _logits_labels(rng, size)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(np.float32), labels


def _logits_multilabel(rng, size):
  """Logits ``[B, C]`` and 0/1 targets, about one class in four on."""
  batch, classes = size
  logits = (2 * rng.standard_normal((batch, classes), np.float32)).astype(np.float32)
  return logits, (rng.random((batch, classes)) < 0.25).astype(np.float32)


def _distances_signs(rng, n):
  """Non-negative distances around the margin 1 and labels -1 / +1: both branches of the hinge are taken."""
  return rng.uniform(0.0, 2.0, n).astype(np.float32), np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)


def _weston_watkins(s, y):
  """The plain expression of ``multi_margin`` (p=1, margin=1): hinge of every other class, over C."""
  s_y = jnp.take_along_axis(s, y[:, None], axis=-1)
  others = ~jax.nn.one_hot(y, s.shape[-1], dtype=bool)
  return jnp.mean(jnp.sum(jnp.where(others, jax.nn.relu(1 - s_y + s), 0), axis=-1) / s.shape[-1])


def _softmax_focal(x, y, gamma):
  log_p = jnp.take_along_axis(jax.nn.log_softmax(x, axis=-1), y[:, None], axis=-1)[:, 0]
  return jnp.mean(-((1 - jnp.exp(log_p)) ** gamma) * log_p)


def _multilabel_margin(s, y):
  """The plain expression: the targets before the first -1 (distinct here), a hinge over target / other pairs."""
  classes = s.shape[-1]
  listed = jnp.cumsum(y == -1, axis=-1) == 0
  target = jnp.any(jax.nn.one_hot(jnp.where(listed, y, -1), classes, dtype=bool), axis=-2)
  pairs = jax.nn.relu(1 - s[:, :, None] + s[:, None, :])
  return jnp.mean(jnp.sum(jnp.where(target[:, :, None] & ~target[:, None, :], pairs, 0), axis=(1, 2)) / classes)


def _sigmoid_focal(x, t, alpha, gamma):
  p = jax.nn.sigmoid(x)
  ce = t * jax.nn.softplus(-x) + (1 - t) * jax.nn.softplus(x)
  p_t = p * t + (1 - p) * (1 - t)
  return jnp.mean((alpha * t + (1 - alpha) * (1 - t)) * ce * (1 - p_t) ** gamma)


def _torch_multi_margin(s, y):
  return torch_functional().multi_margin_loss(s, y.long())


def _torch_nll(q, y):
  return torch_functional().nll_loss(q, y.long())


def _torch_cross_entropy(x, y):
  return torch_functional().cross_entropy(x, y.long())


def _elementwise(name, loss, make, sizes, **kwargs) -> Case:
  kwargs.setdefault("quick_sizes", (10**6,))
  return Case(name, "classification", loss, make, sizes=sizes, **kwargs)


def _rowwise(name, loss, sizes, make=_logits_labels, **kwargs) -> Case:
  kwargs.setdefault("smoke_size", (8, 16))
  return Case(name, "classification", loss, make, sizes=sizes, **kwargs)


CASES = [
  _rowwise(
    "cross_entropy",
    jl.cross_entropy,
    sizes=((1024, 8192), (4096, 32768)),  # (4096, 32768): issue 3's acceptance figure
    jnp=in_float32(lambda x, y: jnp.mean(_neg_log_softmax_of_label(x, y))),
    optax=lambda x, y: jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(x, y)),
    torch=_torch_cross_entropy,
    quick_sizes=((1024, 8192),),
  ),
  _rowwise(
    "cross_entropy-smoothing",
    lambda x, y: jl.cross_entropy(x, y, label_smoothing=0.1),
    sizes=((1024, 8192),),
    dtypes=("float32",),
    jnp=in_float32(
      lambda x, y: jnp.mean(
        0.9 * _neg_log_softmax_of_label(x, y) + 0.1 * jnp.mean(-jax.nn.log_softmax(x, axis=-1), axis=-1)
      )
    ),
    torch=lambda x, y: torch_functional().cross_entropy(x, y.long(), label_smoothing=0.1),
  ),
  _rowwise(
    "poly_cross_entropy",
    jl.poly_cross_entropy,
    sizes=((1024, 8192),),
    dtypes=("float32",),
    jnp=in_float32(lambda x, y: _poly(x, y, 1.0)),
    # optax takes probability labels only: the one-hot is part of calling it.
    optax=lambda x, y: jnp.mean(optax.losses.poly_loss_cross_entropy(x, jax.nn.one_hot(y, x.shape[-1]), epsilon=1.0)),
  ),
  _rowwise(
    "multiclass_hinge",
    jl.multiclass_hinge,
    sizes=((1024, 8192),),
    dtypes=("float32",),
    jnp=in_float32(_crammer_singer),
    optax=lambda s, y: jnp.mean(optax.losses.multiclass_hinge_loss(s, y)),
    quick_sizes=((1024, 1024),),
  ),
  Case(
    "multilabel_margin",
    "classification",
    jl.multilabel_margin,
    _scores_target_lists,
    sizes=((1024, 256),),  # [B, C, C] pairs, as torch's C-by-targets loop
    dtypes=("float32",),
    jnp=in_float32(_multilabel_margin),
    torch=lambda s, y: torch_functional().multilabel_margin_loss(s, y.long()),
    smoke_size=(8, 16),
  ),
  _elementwise(
    "binary_cross_entropy_with_logits",
    jl.binary_cross_entropy_with_logits,
    _logits_targets,
    sizes=(10**4, 10**6, 10**7, 10**8),
    jnp=in_float32(lambda x, t: jnp.mean(t * jax.nn.softplus(-x) + (1 - t) * jax.nn.softplus(x))),
    optax=lambda x, t: jnp.mean(optax.losses.sigmoid_binary_cross_entropy(x, t)),
    torch=lambda x, t: torch_functional().binary_cross_entropy_with_logits(x, t),
  ),
  _elementwise(
    "binary_cross_entropy",
    jl.binary_cross_entropy,
    _probs_targets,
    sizes=(10**6, 10**7),
    dtypes=("float32",),
    jnp=in_float32(
      lambda p, t: -jnp.mean(t * jnp.maximum(jnp.log(p), -100) + (1 - t) * jnp.maximum(jnp.log1p(-p), -100))
    ),
    torch=lambda p, t: torch_functional().binary_cross_entropy(p, t),
    quick_sizes=(),
  ),
  _elementwise(
    "sigmoid_focal",
    jl.sigmoid_focal,
    _logits_targets,
    sizes=(10**6, 10**7),
    dtypes=("float32",),
    jnp=in_float32(lambda x, t: _sigmoid_focal(x, t, 0.25, 2.0)),
    optax=lambda x, t: jnp.mean(optax.losses.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0)),
    quick_sizes=(),
  ),
  _elementwise(
    "hinge",
    jl.hinge,
    _scores_signs,
    sizes=(10**6, 10**7),
    dtypes=("float32",),
    jnp=in_float32(lambda s, y: jnp.mean(jax.nn.relu(1 - y * s))),
    optax=lambda s, y: jnp.mean(optax.losses.hinge_loss(s, y)),
    quick_sizes=(),
  ),
  _rowwise(
    "nll",
    jl.nll,
    sizes=((1024, 8192),),
    dtypes=("float32",),
    jnp=in_float32(lambda q, y: -jnp.mean(jnp.take_along_axis(q, y[:, None], axis=-1))),
    make=_log_probs_labels,
    torch=_torch_nll,
  ),
  _rowwise(
    "softmax_focal",
    jl.softmax_focal,
    sizes=((1024, 8192),),
    dtypes=("float32",),
    jnp=in_float32(lambda x, y: _softmax_focal(x, y, 2.0)),
  ),
  _rowwise(
    "multi_margin",
    jl.multi_margin,
    sizes=((1024, 8192),),
    dtypes=("float32",),
    jnp=in_float32(_weston_watkins),
    torch=_torch_multi_margin,
  ),
  Case(
    "multilabel_soft_margin",
    "classification",
    jl.multilabel_soft_margin,
    _logits_multilabel,
    sizes=((1024, 8192),),
    dtypes=("float32",),
    jnp=in_float32(lambda x, t: jnp.mean(jnp.mean(t * jax.nn.softplus(-x) + (1 - t) * jax.nn.softplus(x), axis=-1))),
    torch=lambda x, t: torch_functional().multilabel_soft_margin_loss(x, t),
    smoke_size=(8, 16),
  ),
  _elementwise(
    "soft_margin",
    jl.soft_margin,
    _scores_signs,
    sizes=(10**6, 10**7),
    dtypes=("float32",),
    jnp=in_float32(lambda s, y: jnp.mean(jax.nn.softplus(-y * s))),
    torch=lambda s, y: torch_functional().soft_margin_loss(s, y),
    quick_sizes=(),
  ),
  _elementwise(
    "squared_hinge",
    jl.squared_hinge,
    _scores_signs,
    sizes=(10**6, 10**7),
    dtypes=("float32",),
    jnp=in_float32(lambda s, y: jnp.mean(jax.nn.relu(1 - y * s) ** 2)),
    quick_sizes=(),
  ),
  _elementwise(
    "hinge_embedding",
    jl.hinge_embedding,
    _distances_signs,
    sizes=(10**6, 10**7),
    dtypes=("float32",),
    jnp=in_float32(lambda x, y: jnp.mean(jnp.where(y > 0, x, jax.nn.relu(1 - x)))),
    torch=lambda x, y: torch_functional().hinge_embedding_loss(x, y),
    quick_sizes=(),
  ),
]
