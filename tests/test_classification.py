"""Classification losses: values against NumPy float64 references written from the formulas,
values and gradients against torch (torch.nn.functional, or the formula written in torch where
torch has no such loss: torchvision's sigmoid_focal_loss, which is not installed, is written out
here from its source) in float64 for all reductions with weights and masks, exact subgradients at
the kinks in reverse and forward mode, the edges, half-precision accuracy, trace-time errors and
the checked mode."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from jax.experimental import checkify

import jaxloss as jl

C = 5
CLASS_WEIGHTS = np.array([0.5, 2.0, 1.0, 1.5, 0.0])  # a zero weight: torch still counts its smoothing term
IGNORE = -100


def _rng(seed=0):
  return np.random.default_rng(seed)


# NumPy float64 references, per example, straight from the formulas.
def _np_log_softmax(x):
  m = np.max(x, axis=-1, keepdims=True)
  return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def _np_pick(x, y):
  return np.take_along_axis(x, np.clip(y, 0, x.shape[-1] - 1)[..., None], axis=-1)[..., 0]


def _np_softplus(x):
  return np.logaddexp(0.0, x)


def np_nll(lp, y, class_weights=None, ignore_index=None):
  w = np.ones(lp.shape[-1]) if class_weights is None else class_weights
  out = -_np_pick(w[None, :] * lp.reshape(-1, lp.shape[-1]), y.reshape(-1)).reshape(y.shape)
  return out if ignore_index is None else np.where(y == ignore_index, 0.0, out)


def _np_logsumexp(x):
  m = np.max(x, axis=-1)
  return m + np.log(np.sum(np.exp(x - m[..., None]), axis=-1))


def np_cross_entropy(
  x, y, label_smoothing=0.0, class_weights=None, ignore_index=None, axis=-1, z_loss=0.0, softcap=None
):
  x = np.moveaxis(x, axis, -1)
  if softcap is not None:
    x = softcap * np.tanh(x / softcap)
  lp = _np_log_softmax(x)
  z = z_loss * _np_logsumexp(x) ** 2  # not class-weighted
  w = np.ones(x.shape[-1]) if class_weights is None else class_weights
  if np.issubdtype(y.dtype, np.floating):
    q = np.moveaxis(y, axis, -1) * (1 - label_smoothing) + label_smoothing / x.shape[-1]
    return -np.sum(w * q * lp, axis=-1) + z
  out = (1 - label_smoothing) * np_nll(lp, y, w) - label_smoothing / x.shape[-1] * np.sum(w * lp, axis=-1) + z
  return out if ignore_index is None else np.where(y == ignore_index, 0.0, out)


def np_binary_cross_entropy(p, t):
  with np.errstate(divide="ignore"):
    return -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))


def np_bce_with_logits(x, t, pos_weight=None):
  pw = 1.0 if pos_weight is None else pos_weight
  return -(pw * t * -_np_softplus(-x) + (1 - t) * -_np_softplus(x))


def np_sigmoid_focal(x, t, alpha=0.25, gamma=2.0):
  p = 1 / (1 + np.exp(-x))
  p_t = p * t + (1 - p) * (1 - t)
  out = np_bce_with_logits(x, t) * (1 - p_t) ** gamma
  return out * (alpha * t + (1 - alpha) * (1 - t)) if alpha >= 0 else out


def np_softmax_focal(x, y, gamma=2.0, alpha=None):
  lp_y = _np_pick(_np_log_softmax(x), y)
  a = 1.0 if alpha is None else np.broadcast_to(alpha, (x.shape[-1],))[y]
  return -a * (1 - np.exp(lp_y)) ** gamma * lp_y


def np_hinge(s, y, margin=1.0):
  return np.maximum(0.0, margin - y * s)


def np_squared_hinge(s, y, margin=1.0):
  return np.maximum(0.0, margin - y * s) ** 2


def np_multiclass_hinge(s, y):
  others = np.where(np.eye(s.shape[-1], dtype=bool)[y], -np.inf, s)
  return np.maximum(0.0, 1 + others.max(-1) - _np_pick(s, y))


def np_multi_margin(s, y, p=1, margin=1.0, class_weights=None):
  z = np.maximum(0.0, margin - _np_pick(s, y)[..., None] + s) ** p
  z = np.where(np.eye(s.shape[-1], dtype=bool)[y], 0.0, z)
  w = 1.0 if class_weights is None else class_weights[y]
  return w * z.sum(-1) / s.shape[-1]


def np_hinge_embedding(x, y, margin=1.0):
  return np.where(y == 1, x, np.maximum(0.0, margin - x))


def np_soft_margin(s, y):
  return np.log1p(np.exp(-y * s))


def np_multilabel_soft_margin(x, t, class_weights=None):
  w = 1.0 if class_weights is None else class_weights
  return np.mean(w * (t * _np_softplus(-x) + (1 - t) * _np_softplus(x)), axis=-1)


def np_multilabel_margin(s, y):
  """torch's algorithm (aten/src/ATen/native/LossMultiLabelMargin.cpp), one example at a time."""
  num_classes = s.shape[-1]
  out = []
  for row, labels in zip(s.reshape(-1, num_classes), y.reshape(-1, num_classes), strict=True):
    targets = []
    for label in labels:
      if label < 0:
        break
      targets.append(int(label))
    others = [k for k in range(num_classes) if k not in targets]
    out.append(sum(max(0.0, 1 - row[j] + row[k]) for j in targets for k in others) / num_classes)
  return np.array(out).reshape(s.shape[:-1])


def np_poly_cross_entropy(x, y, epsilon=1.0):
  lp = _np_log_softmax(x)
  if np.issubdtype(y.dtype, np.floating):
    return -np.sum(y * lp, -1) + epsilon * np.sum(y * (1 - np.exp(lp)), -1)
  return -_np_pick(lp, y) + epsilon * (1 - np.exp(_np_pick(lp, y)))


# torch references, per example (reduction="none", class weights included as torch includes them).
def _flat(fn, x, *rest, **kw):
  """Apply a torch loss that wants ``[N, C]`` to ``[..., C]`` inputs."""
  shape = x.shape[:-1]
  flat = [r.reshape(-1, r.shape[-1]) if r.shape == x.shape else r.reshape(-1) for r in rest]
  return fn(x.reshape(-1, x.shape[-1]), *flat, reduction="none", **kw).reshape(shape)


def _t(a):
  return None if a is None else torch.as_tensor(np.array(a))


def torch_sigmoid_focal(x, t, alpha=0.25, gamma=2.0):
  """torchvision.ops.sigmoid_focal_loss (torchvision 0.19 source), reduction="none"."""
  p = torch.sigmoid(x)
  ce_loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
  p_t = p * t + (1 - p) * (1 - t)
  loss = ce_loss * ((1 - p_t) ** gamma)
  if alpha >= 0:
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    loss = alpha_t * loss
  return loss


def torch_cross_entropy(x, y, *, z_loss=0.0, softcap=None, ignore_index=-100, **options):
  """F.cross_entropy of the soft-capped logits, plus the z-loss (t5x / PaLM) where the label is not ignored."""
  if softcap is not None:
    x = softcap * torch.tanh(x / softcap)
  out = _flat(F.cross_entropy, x, y, ignore_index=ignore_index, **options)
  z = z_loss * torch.logsumexp(x, -1) ** 2
  return out + (z if y.is_floating_point() else torch.where(y == ignore_index, 0.0, z))


def torch_softmax_focal(x, y, gamma=2.0, alpha=None):
  lp_y = torch.gather(F.log_softmax(x, -1), -1, y[..., None])[..., 0]
  a = 1.0 if alpha is None else torch.broadcast_to(_t(alpha), (x.shape[-1],))[y]
  return -a * (1 - lp_y.exp()) ** gamma * lp_y


def torch_multiclass_hinge(s, y):
  s_y = torch.gather(s, -1, y[..., None])[..., 0]
  others = s.masked_fill(F.one_hot(y, s.shape[-1]).bool(), -torch.inf)
  return torch.clamp(1 + others.max(-1).values - s_y, min=0)


def torch_poly(x, y, epsilon=1.0):
  lp = F.log_softmax(x, -1)
  if y.is_floating_point():
    return -(y * lp).sum(-1) + epsilon * (y * (1 - lp.exp())).sum(-1)
  lp_y = torch.gather(lp, -1, y[..., None])[..., 0]
  return -lp_y + epsilon * (1 - lp_y.exp())


# Inputs, kept away from kinks and ties by more than the float64 comparison could notice.
def _logits(rng, batch):
  return [rng.normal(size=(*batch, C)) * 2, rng.integers(0, C, size=batch)]


def _logits_ignored(rng, batch):
  x, y = _logits(rng, batch)
  y.flat[::4] = IGNORE
  return [x, y]


def _log_probs(rng, batch):
  x, y = _logits(rng, batch)
  return [_np_log_softmax(x), y]


def _log_probs_ignored(rng, batch):
  x, y = _logits_ignored(rng, batch)
  return [_np_log_softmax(x), y]


def _soft(rng, batch):
  return [rng.normal(size=(*batch, C)) * 2, np.exp(_np_log_softmax(rng.normal(size=(*batch, C))))]


def _probs(rng, batch):
  return [rng.uniform(0.02, 0.98, size=batch), rng.uniform(0, 1, size=batch)]


def _binary(rng, batch):
  return [rng.normal(size=batch) * 2, rng.choice([0.0, 1.0], size=batch)]


def _binary_soft(rng, batch):
  return [rng.normal(size=batch) * 2, rng.uniform(0, 1, size=batch)]


def _signed(rng, batch, margin=1.0):
  y = rng.choice([-1.0, 1.0], size=batch)
  return [y * (margin + rng.choice([-1.0, 1.0], size=batch) * rng.uniform(0.1, 2.0, size=batch)), y]


def _distances(rng, batch):
  x = rng.uniform(0.0, 2.9, size=batch)
  return [np.where(x < 0.9, x, x + 0.2), rng.choice([-1.0, 1.0], size=batch)]


def _margins(rng, batch, margin=1.0):
  while True:
    x, y = _logits(rng, batch)
    z = margin - _np_pick(x, y)[..., None] + x
    z = np.where(np.eye(C, dtype=bool)[y], np.inf, np.abs(z))
    if z.min() > 0.05 and np.diff(np.sort(x, -1), axis=-1).min() > 0.05:
      return [x, y]


def _multilabel(rng, batch):
  return [rng.normal(size=(*batch, C)) * 2, rng.choice([0.0, 1.0], size=(*batch, C))]


def _target_lists(rng, batch):
  """Scores away from the hinge kinks; labels: each example's target classes, -1, then any valid entries."""
  labels = rng.integers(-1, C, size=(*batch, C))
  for row in labels.reshape(-1, C):
    targets = rng.choice(C, size=rng.integers(0, C + 1), replace=False)
    row[: targets.size] = targets
    if targets.size < C:
      row[targets.size] = -1
  while True:
    x = rng.normal(size=(*batch, C)) * 2
    if np.abs(1 - x[..., :, None] + x[..., None, :]).min() > 0.05:
      return [x, labels]


@dataclasses.dataclass(frozen=True)
class Spec:
  name: str
  fn: Callable[..., Any]  # the jaxloss loss, options bound
  numpy: Callable[..., np.ndarray]  # per-example NumPy reference
  torch: Callable[..., torch.Tensor]  # per-example torch reference
  make: Callable[..., list]
  diff: tuple[int, ...] = (0,)
  count: Callable[..., np.ndarray] | None = None  # what each example counts for in the mean
  one_axis: tuple[int, ...] = (7,)  # the batch of the unweighted runs, torch's own reductions

  def __str__(self):
    return self.name


def _bind(fn, **options):
  return lambda *a, **kw: fn(*a, **options, **kw)


def _np_bind(fn, **options):
  return lambda *a: fn(*a, **options)


def _class_count(ignore=False):
  def count(x, y):
    out = CLASS_WEIGHTS[np.clip(y, 0, C - 1)]
    return np.where(y == IGNORE, 0.0, out) if ignore else out

  return count


CW = _t(CLASS_WEIGHTS)

SPECS = [
  Spec("nll", jl.nll, np_nll, lambda lp, y: _flat(F.nll_loss, lp, y), _log_probs),
  Spec(
    "nll-class_weights-ignore_index",
    _bind(jl.nll, class_weights=CLASS_WEIGHTS, ignore_index=IGNORE),
    _np_bind(np_nll, class_weights=CLASS_WEIGHTS, ignore_index=IGNORE),
    lambda lp, y: _flat(F.nll_loss, lp, y, weight=CW, ignore_index=IGNORE),
    _log_probs_ignored,
    count=_class_count(ignore=True),
  ),
  Spec("cross_entropy", jl.cross_entropy, np_cross_entropy, lambda x, y: _flat(F.cross_entropy, x, y), _logits),
  Spec(
    "cross_entropy-smoothing-class_weights-ignore_index",
    _bind(jl.cross_entropy, label_smoothing=0.15, class_weights=CLASS_WEIGHTS, ignore_index=IGNORE),
    _np_bind(np_cross_entropy, label_smoothing=0.15, class_weights=CLASS_WEIGHTS, ignore_index=IGNORE),
    lambda x, y: _flat(F.cross_entropy, x, y, weight=CW, ignore_index=IGNORE, label_smoothing=0.15),
    _logits_ignored,
    count=_class_count(ignore=True),
  ),
  Spec(
    "cross_entropy-smoothing-class_weights-ignore_index-z_loss-softcap",
    _bind(
      jl.cross_entropy, label_smoothing=0.15, class_weights=CLASS_WEIGHTS, ignore_index=IGNORE, z_loss=0.03, softcap=2.5
    ),
    _np_bind(
      np_cross_entropy, label_smoothing=0.15, class_weights=CLASS_WEIGHTS, ignore_index=IGNORE, z_loss=0.03, softcap=2.5
    ),
    lambda x, y: torch_cross_entropy(
      x, y, weight=CW, ignore_index=IGNORE, label_smoothing=0.15, z_loss=0.03, softcap=2.5
    ),
    _logits_ignored,
    count=_class_count(ignore=True),
  ),
  Spec(
    "cross_entropy-axis1-class_weights",  # torch's own layout: [N, C, d]
    _bind(jl.cross_entropy, axis=1, class_weights=CLASS_WEIGHTS),
    _np_bind(np_cross_entropy, axis=1, class_weights=CLASS_WEIGHTS),
    lambda x, y: F.cross_entropy(x, y, weight=CW, reduction="none"),
    lambda rng, batch: [np.moveaxis(rng.normal(size=(*batch, C)) * 2, -1, 1), rng.integers(0, C, size=batch)],
    count=_class_count(),
  ),
  Spec(
    "cross_entropy-probs",
    jl.cross_entropy,
    np_cross_entropy,
    lambda x, t: _flat(F.cross_entropy, x, t),
    _soft,
    diff=(0, 1),
  ),
  Spec(
    "cross_entropy-probs-smoothing-class_weights",
    _bind(jl.cross_entropy, label_smoothing=0.3, class_weights=CLASS_WEIGHTS),
    _np_bind(np_cross_entropy, label_smoothing=0.3, class_weights=CLASS_WEIGHTS),
    lambda x, t: _flat(F.cross_entropy, x, t, weight=CW, label_smoothing=0.3),
    _soft,
    diff=(0, 1),
  ),
  Spec(
    "cross_entropy-probs-smoothing-class_weights-z_loss-softcap",
    _bind(jl.cross_entropy, label_smoothing=0.3, class_weights=CLASS_WEIGHTS, z_loss=0.03, softcap=2.5),
    _np_bind(np_cross_entropy, label_smoothing=0.3, class_weights=CLASS_WEIGHTS, z_loss=0.03, softcap=2.5),
    lambda x, t: torch_cross_entropy(x, t, weight=CW, label_smoothing=0.3, z_loss=0.03, softcap=2.5),
    _soft,
    diff=(0, 1),
  ),
  Spec(
    "binary_cross_entropy",
    jl.binary_cross_entropy,
    np_binary_cross_entropy,
    lambda p, t: F.binary_cross_entropy(p, t, reduction="none"),
    _probs,
    diff=(0, 1),
  ),
  Spec(
    "binary_cross_entropy_with_logits",
    jl.binary_cross_entropy_with_logits,
    np_bce_with_logits,
    lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
    _binary_soft,
    diff=(0, 1),
  ),
  Spec(
    "binary_cross_entropy_with_logits-pos_weight",
    _bind(jl.binary_cross_entropy_with_logits, pos_weight=np.array([0.5, 2.0, 3.0])),
    _np_bind(np_bce_with_logits, pos_weight=np.array([0.5, 2.0, 3.0])),
    lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=_t([0.5, 2.0, 3.0]), reduction="none"),
    _binary_soft,
    diff=(0, 1),
    one_axis=(7, 3),  # pos_weight is per class, the last axis
  ),
  # Differentiated in the targets too: binary targets (issue 13, item 10) and soft ones.
  Spec("sigmoid_focal", jl.sigmoid_focal, np_sigmoid_focal, torch_sigmoid_focal, _binary, diff=(0, 1)),
  Spec(
    "sigmoid_focal-soft-gamma0.5-no_alpha",
    _bind(jl.sigmoid_focal, gamma=0.5, alpha=-1.0),
    _np_bind(np_sigmoid_focal, gamma=0.5, alpha=-1.0),
    lambda x, t: torch_sigmoid_focal(x, t, gamma=0.5, alpha=-1.0),
    _binary_soft,
    diff=(0, 1),
  ),
  Spec("softmax_focal", jl.softmax_focal, np_softmax_focal, torch_softmax_focal, _logits),
  Spec(
    "softmax_focal-gamma0.5-alpha",
    _bind(jl.softmax_focal, gamma=0.5, alpha=CLASS_WEIGHTS),
    _np_bind(np_softmax_focal, gamma=0.5, alpha=CLASS_WEIGHTS),
    lambda x, y: torch_softmax_focal(x, y, gamma=0.5, alpha=CLASS_WEIGHTS),
    _logits,
  ),
  Spec(
    "hinge-margin0.5",
    _bind(jl.hinge, margin=0.5),
    _np_bind(np_hinge, margin=0.5),
    lambda s, y: torch.clamp(0.5 - y * s, min=0),
    lambda rng, batch: _signed(rng, batch, 0.5),
  ),
  Spec(
    "squared_hinge",
    jl.squared_hinge,
    np_squared_hinge,
    lambda s, y: torch.clamp(1 - y * s, min=0) ** 2,
    _signed,
  ),
  Spec("multiclass_hinge", jl.multiclass_hinge, np_multiclass_hinge, torch_multiclass_hinge, _margins),
  Spec("multi_margin", jl.multi_margin, np_multi_margin, lambda s, y: _flat(F.multi_margin_loss, s, y), _margins),
  Spec(
    "multi_margin-p2-class_weights",
    _bind(jl.multi_margin, p=2, margin=0.5, class_weights=CLASS_WEIGHTS),
    _np_bind(np_multi_margin, p=2, margin=0.5, class_weights=CLASS_WEIGHTS),
    lambda s, y: _flat(F.multi_margin_loss, s, y, p=2, margin=0.5, weight=CW),
    lambda rng, batch: _margins(rng, batch, 0.5),
  ),
  Spec(
    "multilabel_margin",
    jl.multilabel_margin,
    np_multilabel_margin,
    lambda s, y: _flat(F.multilabel_margin_loss, s, y),
    _target_lists,
  ),
  Spec(
    "hinge_embedding",
    jl.hinge_embedding,
    np_hinge_embedding,
    lambda x, y: F.hinge_embedding_loss(x, y, reduction="none"),
    _distances,
  ),
  Spec("soft_margin", jl.soft_margin, np_soft_margin, lambda s, y: F.soft_margin_loss(s, y, reduction="none"), _signed),
  Spec(
    "multilabel_soft_margin-class_weights",
    _bind(jl.multilabel_soft_margin, class_weights=CLASS_WEIGHTS),
    _np_bind(np_multilabel_soft_margin, class_weights=CLASS_WEIGHTS),
    lambda x, t: _flat(F.multilabel_soft_margin_loss, x, t, weight=CW),
    _multilabel,
    diff=(0, 1),
  ),
  Spec("poly_cross_entropy", jl.poly_cross_entropy, np_poly_cross_entropy, torch_poly, _logits),
  Spec(
    "poly_cross_entropy-probs",
    _bind(jl.poly_cross_entropy, epsilon=2.0),
    _np_bind(np_poly_cross_entropy, epsilon=2.0),
    lambda x, t: torch_poly(x, t, epsilon=2.0),
    _soft,
    diff=(0, 1),
  ),
]

BATCH = (2, 3)  # two leading batch dimensions


def _np_reduce(per_example, reduction, weights, where, count):
  wl = np.where(where, weights * per_example, 0.0)
  if reduction == "none":
    return wl
  if reduction == "sum":
    return wl.sum()
  return wl.sum() / np.sum(np.where(where, weights * count, 0.0))


def _torch_reduce(per_example, reduction, weights, where, count):
  wl = torch.where(where, weights * per_example, 0.0)
  if reduction == "none":
    return wl
  if reduction == "sum":
    return wl.sum()
  return wl.sum() / torch.where(where, weights * count, 0.0).sum()


def _jax_runs(fn, diff, runs):
  """Values and gradients (of the sum) for every ``(arrays, reduction, array_options)`` run, in one compilation."""

  def all_runs(inputs):
    out = []
    for (arrays, options), (_, reduction, _) in zip(inputs, runs, strict=True):

      def total(*diff_args, arrays=arrays, options=options, reduction=reduction):
        full = list(arrays)
        for i, a in zip(diff, diff_args, strict=True):
          full[i] = a
        value = fn(*full, reduction=reduction, **options)
        return jnp.sum(value), value

      (_, value), grads = jax.value_and_grad(total, argnums=tuple(range(len(diff))), has_aux=True)(
        *(arrays[i] for i in diff)
      )
      out.append((value, grads))
    return out

  with jax.enable_x64(True):
    inputs = [
      ([jnp.asarray(a) for a in arrays], {k: jnp.asarray(v) for k, v in options.items()}) for arrays, _, options in runs
    ]
    results = jax.jit(all_runs)(inputs)
    return [(np.asarray(value), [np.asarray(g) for g in grads]) for value, grads in results]


def _torch_value_and_grads(fn, arrays, diff, reduce):
  tensors = [torch.tensor(a, requires_grad=i in diff) for i, a in enumerate(arrays)]
  out = reduce(fn(*tensors))
  out.sum().backward()
  return out.detach().numpy(), [tensors[i].grad.numpy() for i in diff]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_matches_torch_and_numpy(spec):
  """All three reductions with weights and a mask on ``[2, 3, ...]`` inputs, and without them on one
  batch axis, where torch's own ``"mean"`` (with its class-weighted denominators) and ``"sum"`` apply."""
  rng = _rng(len(spec.name))
  arrays = spec.make(rng, BATCH)
  loss_shape = np.shape(spec.numpy(*arrays))
  weights = rng.uniform(0.5, 2.0, loss_shape)
  where = rng.uniform(size=loss_shape) < 0.75
  count = np.ones(loss_shape) if spec.count is None else spec.count(*arrays)
  one_axis = spec.make(rng, spec.one_axis)
  one_axis_count = np.ones(np.shape(spec.numpy(*one_axis))) if spec.count is None else spec.count(*one_axis)
  runs = [(arrays, r, {"weights": weights, "where": where}) for r in ("mean", "sum", "none")]
  runs += [(one_axis, r, {}) for r in ("mean", "sum")]
  results = _jax_runs(spec.fn, spec.diff, runs)

  for (inputs, reduction, options), (value, grads) in zip(runs, results, strict=True):
    message = f"{spec.name}, reduction={reduction!r}, weights and mask: {bool(options)}"
    if options:
      expected = _np_reduce(spec.numpy(*inputs), reduction, weights, where, count)
      np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12, err_msg=message)

      def reduce(per_example, reduction=reduction):
        return _torch_reduce(per_example, reduction, _t(weights), _t(where), _t(count))

    else:

      def reduce(per_example, reduction=reduction):
        return per_example.sum() if reduction == "sum" else per_example.sum() / _t(one_axis_count).sum()

    t_value, t_grads = _torch_value_and_grads(spec.torch, inputs, spec.diff, reduce)
    np.testing.assert_allclose(value, t_value, rtol=1e-6, atol=1e-12, err_msg=message)
    for g, tg in zip(grads, t_grads, strict=True):
      np.testing.assert_allclose(g, tg, rtol=1e-6, atol=1e-12, err_msg=message)


TORCH_OWN_REDUCTION = [
  (jl.nll, {"class_weights": CLASS_WEIGHTS, "ignore_index": IGNORE}, F.nll_loss, {"weight": CW}, _log_probs_ignored),
  (
    jl.cross_entropy,
    {"class_weights": CLASS_WEIGHTS, "ignore_index": IGNORE, "label_smoothing": 0.15},
    F.cross_entropy,
    {"weight": CW, "label_smoothing": 0.15},
    _logits_ignored,
  ),
  (
    jl.cross_entropy,
    {"class_weights": CLASS_WEIGHTS, "label_smoothing": 0.3},
    F.cross_entropy,
    {"weight": CW, "label_smoothing": 0.3},
    _soft,
  ),
  (jl.multi_margin, {"class_weights": CLASS_WEIGHTS}, F.multi_margin_loss, {"weight": CW}, _margins),
  (
    jl.multilabel_soft_margin,
    {"class_weights": CLASS_WEIGHTS},
    F.multilabel_soft_margin_loss,
    {"weight": CW},
    _multilabel,
  ),
]


@pytest.mark.parametrize("jl_fn, jl_options, torch_fn, torch_options, make", TORCH_OWN_REDUCTION)
def test_class_weighted_mean_is_torch_mean(jl_fn, jl_options, torch_fn, torch_options, make):
  arrays = make(_rng(9), (8,))
  with jax.enable_x64(True):
    value = jl_fn(*(jnp.asarray(a) for a in arrays), **jl_options)
  expected = torch_fn(*(_t(a) for a in arrays), reduction="mean", **torch_options)
  np.testing.assert_allclose(value, expected.numpy(), rtol=1e-10)


def test_cross_entropy_any_axis():
  rng = _rng(10)
  x, y = rng.normal(size=(3, 4, C, 2)), rng.integers(0, C, size=(3, 4, 2))
  with jax.enable_x64(True):
    for axis in (2, -2):
      out = jl.cross_entropy(jnp.asarray(x), jnp.asarray(y), axis=axis, reduction="none")
      np.testing.assert_allclose(out, F.cross_entropy(_t(np.moveaxis(x, 2, 1)), _t(y), reduction="none"), rtol=1e-12)
    probs = np.exp(_np_log_softmax(rng.normal(size=(C, 6))))
    logits = rng.normal(size=(C, 6))
    out = jl.cross_entropy(jnp.asarray(logits), jnp.asarray(probs), axis=0, label_smoothing=0.1, reduction="none")
    expected = F.cross_entropy(_t(logits.T), _t(probs.T), label_smoothing=0.1, reduction="none")
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_matches_optax_where_optax_has_the_loss():
  rng = _rng(11)
  x, y = _margins(rng, (6,))
  _, soft = _soft(rng, (6,))
  xb, tb = _binary_soft(rng, (6,))
  with jax.enable_x64(True):
    X, Y, S, XB, TB = (jnp.asarray(a) for a in (x, y, soft, xb, tb))
    pairs = [
      (jl.cross_entropy(X, Y, reduction="none"), optax.losses.softmax_cross_entropy_with_integer_labels(X, Y)),
      (jl.cross_entropy(X, S, reduction="none"), optax.losses.softmax_cross_entropy(X, S)),
      (jl.multiclass_hinge(X, Y, reduction="none"), optax.losses.multiclass_hinge_loss(X, Y)),
      (
        jl.poly_cross_entropy(X, S, epsilon=2.0, reduction="none"),
        optax.losses.poly_loss_cross_entropy(X, S, epsilon=2.0),
      ),
      (
        jl.sigmoid_focal(XB, TB, reduction="none"),
        optax.losses.sigmoid_focal_loss(XB, TB, alpha=0.25, gamma=2.0),
      ),
      (
        jl.binary_cross_entropy_with_logits(XB, TB, reduction="none"),
        optax.losses.sigmoid_binary_cross_entropy(XB, TB),
      ),
    ]
  for ours, theirs in pairs:
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


# Exact subgradients at the kinks, in reverse and forward mode.
def _grad_and_tangent(f, x):
  g = jax.grad(lambda x: jnp.sum(f(x)))(x)
  _, tangent = jax.jvp(f, (x,), (jnp.ones_like(x),))
  return np.asarray(g), np.asarray(tangent)


def test_hinge_gradient_is_exactly_zero_at_the_margin():
  y = jnp.array([1.0, -1.0, 1.0, -1.0])
  for margin in (1.0, 0.5):
    s = y * margin
    for fn in (jl.hinge, jl.squared_hinge):
      g, tangent = _grad_and_tangent(lambda s, fn=fn, m=margin: fn(s, y, margin=m, reduction="none"), s)
      assert np.all(g == 0) and np.all(tangent == 0), (fn, g, tangent)
  # One-sided slopes next to the kink: -y inside the margin, 0 outside.
  g = jax.grad(lambda s: jl.hinge(s, jnp.ones(2), reduction="sum"))(jnp.array([0.5, 1.5]))
  np.testing.assert_array_equal(g, [-1.0, 0.0])


def test_hinge_embedding_gradient_is_zero_at_the_kink_where_torch_gives_minus_one():
  x, y = jnp.array([1.0, 0.4, 2.0]), jnp.array([-1.0, -1.0, 1.0])
  g, tangent = _grad_and_tangent(lambda x: jl.hinge_embedding(x, y, reduction="none"), x)
  np.testing.assert_array_equal(g, [0.0, -1.0, 1.0])
  np.testing.assert_array_equal(tangent, [0.0, -1.0, 1.0])
  xt = torch.tensor([1.0, 0.4, 2.0], dtype=torch.float64, requires_grad=True)
  F.hinge_embedding_loss(xt, _t([-1.0, -1.0, 1.0]), reduction="sum").backward()
  np.testing.assert_array_equal(xt.grad.numpy(), [-1.0, -1.0, 1.0])  # the documented difference


def test_multiclass_hinge_subgradients():
  f = lambda s, y: jl.multiclass_hinge(s, y, reduction="none")
  # The true class ties 1 + the runner-up: the loss kink, gradient exactly 0 (optax splits the tie).
  s, y = jnp.array([[2.0, 1.0, 0.0, 1.0]]), jnp.array([0])
  g, tangent = _grad_and_tangent(lambda s: f(s, y), s)
  assert np.all(g == 0) and np.all(tangent == 0)
  optax_g = jax.grad(lambda s: jnp.sum(optax.losses.multiclass_hinge_loss(s, y)))(s)
  assert np.any(np.asarray(optax_g) != 0)
  # Loss > 0 with two tied runners-up: their average minus e_y, the minimum-norm subgradient.
  s, y = jnp.array([[0.0, 1.0, -1.0, 1.0]]), jnp.array([0])
  g, tangent = _grad_and_tangent(lambda s: f(s, y), s)
  np.testing.assert_array_equal(g, [[-1.0, 0.5, 0.0, 0.5]])
  np.testing.assert_array_equal(tangent, [0.0])  # <[-1, .5, 0, .5], ones> = 0
  _, tangent = jax.jvp(lambda s: f(s, y), (s,), (jnp.array([[0.0, 1.0, 0.0, 0.0]]),))
  np.testing.assert_array_equal(tangent, [0.5])
  # All scores equal: every other class ties, loss 1.
  s, y = jnp.zeros((1, 4)), jnp.array([2])
  third = np.float32(1 / 3)
  np.testing.assert_array_equal(jax.grad(lambda s: jnp.sum(f(s, y)))(s), [[third, third, -1.0, third]])


def test_multi_margin_kink_gradient_matches_torch():
  s, y = np.array([[1.0, 0.0, 0.5, -2.0]]), np.array([0])  # margin - s_y + s_1 == 0 exactly
  g, tangent = _grad_and_tangent(lambda s: jl.multi_margin(jnp.asarray(s), jnp.asarray(y), reduction="none"), s)
  st = torch.tensor(s, requires_grad=True)
  F.multi_margin_loss(st, _t(y)).backward()
  np.testing.assert_array_equal(g, st.grad.numpy().astype(np.float32))
  np.testing.assert_array_equal(g, [[-0.25, 0.0, 0.25, 0.0]])
  np.testing.assert_allclose(tangent, [0.0])


# Edges.
def _finite(*trees):
  for tree in trees:
    for leaf in jax.tree.leaves(tree):
      assert np.all(np.isfinite(np.asarray(leaf))), leaf


def _derivatives(f, x):
  """``(f(x), grad, forward-mode tangent, Hessian)`` of ``sum(f)``, in one compilation."""

  def all_of(x):
    total = lambda x: jnp.sum(f(x))
    return f(x), jax.grad(total)(x), jax.jvp(total, (x,), (jnp.ones_like(x),))[1], jax.hessian(total)(x)

  return jax.jit(all_of)(x)


def test_cross_entropy_with_huge_and_masked_logits():
  y = jnp.array([0, 1, 2])
  x = jnp.array([[1e4, -1e4, 0.0, 1e4], [0.0, 1e4, -1e4, -1e4], [-1e4, -1e4, -1e4, -1e4]], jnp.float32)
  # float32 spacing at 1e4 is ~1e-3: lse - x_y is accurate to that, in any implementation.
  np.testing.assert_allclose(jl.cross_entropy(x, y, reduction="none"), [np.log(2.0), 0.0, np.log(4.0)], atol=1e-3)
  masked = jnp.array([[2.0, -jnp.inf, 0.0, -jnp.inf], [0.0, 1.0, -jnp.inf, -jnp.inf], [0.0, 0.0, 0.0, -jnp.inf]])
  finite = np.asarray(masked, np.float64)
  expected = np_cross_entropy(np.where(np.isinf(finite), -1e300, finite), np.asarray(y))
  for fn in (jl.cross_entropy, jl.softmax_focal, jl.poly_cross_entropy, jl.multiclass_hinge, jl.multi_margin):
    value, grads, tangent, hessian = _derivatives(lambda x, fn=fn: fn(x, y, reduction="none"), masked)
    _finite(value, grads, tangent, hessian)
    assert np.all(np.asarray(grads)[np.isinf(np.asarray(masked))] == 0)
    if fn is jl.cross_entropy:
      np.testing.assert_allclose(value, expected, rtol=1e-6)
  # A -inf logit where the target probability is 0 contributes 0 (torch gives NaN); with mass there, +inf.
  soft = jnp.array([[0.5, 0.0, 0.5, 0.0]])
  assert np.isfinite(float(jl.cross_entropy(masked[:1], soft)))
  assert float(jl.cross_entropy(masked[:1], jnp.full((1, 4), 0.25))) == np.inf
  assert np.isnan(float(F.cross_entropy(_t(np.asarray(masked[:1])), _t(np.asarray(soft)))))
  _finite(jax.grad(lambda x: jl.cross_entropy(x, soft))(masked[:1]))


def test_cross_entropy_backward_reuses_the_forward_exponentials():
  # One exp per element in jit(value_and_grad) and no scatter-add for the target (a fused one-hot select);
  # gradient and Hessian against NumPy float64 softmax - onehot and diag(p) - p p^T.
  x = jnp.asarray(_rng(21).normal(size=(3, 5)), jnp.float32)
  y = jnp.array([0, 4, 2])
  hlo = jax.jit(jax.value_and_grad(jl.cross_entropy)).lower(x, y).compile().as_text()
  assert hlo.count("exponential(") == 1 and "scatter" not in hlo
  xs = np.asarray(x, np.float64)
  p = np.exp(xs - xs.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  np.testing.assert_allclose(jax.grad(jl.cross_entropy)(x, y), (p - np.eye(5)[np.asarray(y)]) / 3, rtol=1e-5, atol=1e-7)
  hessian = np.zeros((3, 5, 3, 5))
  for i in range(3):
    hessian[i, :, i, :] = (np.diag(p[i]) - np.outer(p[i], p[i])) / 3
  np.testing.assert_allclose(jax.hessian(jl.cross_entropy)(x, y), hessian, rtol=1e-5, atol=1e-7)


def test_nll_with_masked_log_probabilities():
  lp = jnp.log(jnp.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]))
  y = jnp.array([0, 1])
  np.testing.assert_allclose(jl.nll(lp, y, reduction="none"), [np.log(2.0), 0.0], atol=1e-7)
  np.testing.assert_array_equal(jax.grad(lambda lp: jl.nll(lp, y, reduction="sum"))(lp), [[-1, 0, 0], [0, -1, 0]])


def test_all_targets_ignored_is_zero_with_zero_gradient_where_torch_gives_nan():
  x = jnp.asarray(_rng(12).normal(size=(4, C)), jnp.float32)
  y = jnp.full((4,), IGNORE)
  for fn, kw in [
    (jl.cross_entropy, {}),
    (jl.cross_entropy, {"label_smoothing": 0.2, "class_weights": CLASS_WEIGHTS}),
    (jl.nll, {"class_weights": CLASS_WEIGHTS}),
  ]:
    assert float(fn(x, y, ignore_index=IGNORE, **kw)) == 0.0
    assert np.all(np.asarray(jax.grad(lambda x, fn=fn, kw=kw: fn(x, y, ignore_index=IGNORE, **kw))(x)) == 0)
    _, tangent = jax.jvp(lambda x, fn=fn, kw=kw: fn(x, y, ignore_index=IGNORE, **kw), (x,), (jnp.ones_like(x),))
    assert float(tangent) == 0.0
  assert np.isnan(float(F.cross_entropy(_t(np.asarray(x)), _t(np.asarray(y, np.int64)))))


def test_ignored_examples_never_leak_nan_or_inf():
  x = jnp.array([[jnp.nan, 0.0, 1.0], [1.0, 2.0, 3.0], [jnp.inf, -jnp.inf, 0.0]])
  y = jnp.array([IGNORE, 2, IGNORE])
  value, grads = jax.value_and_grad(lambda x: jl.cross_entropy(x, y, ignore_index=IGNORE))(x)
  np.testing.assert_allclose(value, np_cross_entropy(np.asarray([[1.0, 2.0, 3.0]]), np.array([2]))[0], rtol=1e-6)
  assert np.all(np.asarray(grads)[[0, 2]] == 0)


def test_out_of_range_labels_give_nan_value_and_zero_gradient_without_checked_mode():
  x = jnp.asarray(_rng(13).normal(size=(4, 3)), jnp.float32)
  y = jnp.array([0, 3, -1, 2])  # 3 >= C and -1 (not ignore_index) are out of range
  good = jnp.array([True, False, False, True])
  keep = np.asarray(good)

  def everything(x, y, fn):
    total = lambda x: fn(x, y, reduction="sum")
    return fn(x, y, reduction="none"), fn(x, y), total(x), jax.grad(total)(x), fn(x, y, where=y >= 0)

  for fn in (jl.cross_entropy, jl.nll, jl.softmax_focal, jl.multiclass_hinge, jl.multi_margin, jl.poly_cross_entropy):
    per_example, mean, total, g, masked_mean = jax.jit(everything, static_argnums=2)(x, y, fn)
    ok_per_example, ok_mean, _, ok_g, _ = jax.jit(everything, static_argnums=2)(x[good], y[good], fn)
    assert np.all(np.isnan(np.asarray(per_example)[~keep])), fn
    np.testing.assert_allclose(np.asarray(per_example)[keep], ok_per_example, rtol=1e-6)
    assert np.isnan(float(mean)) and np.isnan(float(total))
    assert np.all(np.asarray(g)[~keep] == 0), fn
    np.testing.assert_allclose(np.asarray(g)[keep], ok_g, rtol=1e-6)
    # Masked out (here: y >= 0 keeps the label 3), only the label 3 is left as NaN.
    assert np.isnan(float(masked_mean))
    assert float(fn(x, y, where=good)) == pytest.approx(float(ok_mean), rel=1e-6)


def test_binary_cross_entropy_at_probabilities_zero_and_one():
  p = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
  t = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5])
  value = jl.binary_cross_entropy(jnp.asarray(p), jnp.asarray(t), reduction="none")
  g_p, g_t = jax.grad(lambda p, t: jl.binary_cross_entropy(p, t, reduction="sum"), argnums=(0, 1))(
    jnp.asarray(p, jnp.float32), jnp.asarray(t, jnp.float32)
  )
  pt, tt = torch.tensor(p, requires_grad=True), torch.tensor(t)
  torch_value = F.binary_cross_entropy(pt, tt, reduction="none")
  torch_value.sum().backward()
  np.testing.assert_allclose(value, torch_value.detach().numpy(), rtol=1e-6)
  np.testing.assert_allclose(g_p, pt.grad.numpy(), rtol=1e-6)  # torch's (p - t) / max(p (1 - p), 1e-12)
  np.testing.assert_array_equal(g_t, [100.0, -100.0, 100.0, -100.0, 100.0, -100.0])  # torch: +-inf
  _finite(jax.hessian(lambda p: jl.binary_cross_entropy(p, jnp.asarray(t, jnp.float32)))(jnp.asarray(p, jnp.float32)))


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0, 5.0])
def test_focal_losses_are_finite_at_p_one_for_every_gamma(gamma):
  # p_t -> 1 (and p_t rounds to exactly 1 in float32): (1 - p_t)**gamma has an infinite slope for gamma < 1.
  x = jnp.array([1e4, 40.0, 17.0, -40.0, -1e4, 0.0], jnp.float32)
  t = jnp.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.7], jnp.float32)
  _finite(_derivatives(lambda x: jl.sigmoid_focal(x, t, gamma=gamma, reduction="none"), x))
  logits = jnp.array([[1e4, 0.0, 0.0], [40.0, 0.0, -jnp.inf], [0.0, -jnp.inf, -jnp.inf]], jnp.float32)
  y = jnp.array([0, 0, 0])
  _finite(_derivatives(lambda x: jl.softmax_focal(x, y, gamma=gamma, reduction="none"), logits))
  with jax.enable_x64(True):
    x64 = np.array([3.0, 8.0, -8.0, 0.5])
    t64 = np.array([1.0, 1.0, 0.0, 0.3])
    np.testing.assert_allclose(
      jl.sigmoid_focal(jnp.asarray(x64), jnp.asarray(t64), gamma=gamma, reduction="none"),
      np_sigmoid_focal(x64, t64, gamma=gamma),
      rtol=1e-10,
    )


def test_focal_losses_with_a_traced_gamma_are_finite_at_p_one():
  gammas = jnp.array([0.0, 0.25, 0.5, 1.0, 2.0])
  x = jnp.array([1e4, 40.0, 17.0, -40.0, -1e4, 0.0], jnp.float32)
  t = jnp.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.7], jnp.float32)
  logits = jnp.array([[1e4, 0.0, 0.0], [40.0, 0.0, -jnp.inf], [0.0, -jnp.inf, -jnp.inf]], jnp.float32)
  y = jnp.array([0, 0, 0])
  for fn, inputs in (
    (lambda x, g: jl.sigmoid_focal(x, t, gamma=g), x),
    (lambda x, g: jl.softmax_focal(x, y, gamma=g), logits),
  ):
    _finite(jax.jit(jax.vmap(jax.value_and_grad(fn, argnums=(0, 1)), in_axes=(None, 0)))(inputs, gammas))


def test_sigmoid_focal_gamma_below_one_gradient_where_torchvision_is_nan():
  x = torch.tensor([40.0], dtype=torch.float64, requires_grad=True)
  torch_sigmoid_focal(x, _t([1.0]), gamma=0.5).sum().backward()  # 1 - p_t == 0 exactly in float64
  assert not np.isfinite(x.grad.numpy()).all()
  with jax.enable_x64(True):
    g = jax.grad(lambda x: jl.sigmoid_focal(x, jnp.ones(1), gamma=0.5))(jnp.array([40.0]))
  assert np.all(np.isfinite(g)) and np.all(np.asarray(g) <= 0)


def test_softmax_focal_gamma_zero_is_cross_entropy():
  x, y = (jnp.asarray(a) for a in _logits(_rng(14), (6,)))
  x = x.astype(jnp.float32)
  np.testing.assert_allclose(
    jl.softmax_focal(x, y, gamma=0.0, reduction="none"), jl.cross_entropy(x, y, reduction="none"), rtol=1e-6
  )


# Precision.
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bf16", "f16"])
def test_cross_entropy_half_precision_matches_float32_on_the_same_values(dtype):
  key_x, key_y = jax.random.split(jax.random.key(0))
  logits = (jax.random.normal(key_x, (64, 32000)) * 3).astype(dtype)
  labels = jax.random.randint(key_y, (64,), 0, 32000)
  out = jl.cross_entropy(logits, labels)
  assert out.dtype == jnp.float32
  reference = jl.cross_entropy(logits.astype(jnp.float32), labels)
  np.testing.assert_allclose(out, reference, rtol=1e-3)
  exact = np.mean(np_cross_entropy(np.asarray(logits.astype(jnp.float32), np.float64), np.asarray(labels)))
  np.testing.assert_allclose(out, exact, rtol=1e-5)
  per_example = jl.cross_entropy(logits, labels, reduction="none")
  np.testing.assert_allclose(per_example, jl.cross_entropy(logits.astype(jnp.float32), labels, reduction="none"))
  # The shift is taken in the half dtype: the same values and gradients, with -inf logits and a masked example.
  logits = logits.at[0, (labels[0] + 1) % 32000].set(-jnp.inf).at[1].set(-jnp.inf).at[1, labels[1]].set(1.0)
  where = jnp.arange(64) != 2
  value_and_grad = jax.jit(jax.value_and_grad(lambda x: jl.cross_entropy(x, labels, where=where)))
  (value, grad), (full_value, full_grad) = value_and_grad(logits), value_and_grad(logits.astype(jnp.float32))
  np.testing.assert_array_equal(value, full_value)
  np.testing.assert_array_equal(grad, full_grad.astype(dtype))


# Trace-time errors.
X = jnp.zeros((3, 4))
Y = jnp.array([0, 1, 2])


@pytest.mark.parametrize(
  "call, error, pattern",
  [
    (
      lambda: jl.cross_entropy(X, jnp.array([0, 1])),
      ValueError,
      r"jaxloss\.cross_entropy: integer `labels` \(class indices\) must have the shape of `logits` without the class"
      r" axis, \(3,\), got labels\.shape=\(2,\)",
    ),
    (
      lambda: jl.cross_entropy(X, Y, axis=0),
      ValueError,
      r"without the class axis, \(4,\), got labels\.shape=\(3,\)",
    ),
    (
      lambda: jl.cross_entropy(X, jnp.zeros((3, 5))),
      ValueError,
      r"floating `labels` \(probabilities\) must have the shape of `logits`, got logits\.shape=\(3, 4\) and"
      r" labels\.shape=\(3, 5\)",
    ),
    (lambda: jl.cross_entropy(X, Y, axis=2), ValueError, r"`axis`=2 is out of range for an array of rank 2"),
    (lambda: jl.cross_entropy(X, jnp.zeros((3, 4)), ignore_index=0), ValueError, r"`ignore_index` applies to integer"),
    (lambda: jl.cross_entropy(X, Y, ignore_index=1.5), TypeError, r"`ignore_index` must be None or an int, got 1\.5"),
    (lambda: jl.cross_entropy(X, Y, label_smoothing=1.5), ValueError, r"`label_smoothing` must be in \[0, 1\]"),
    (
      lambda: jl.cross_entropy(X, Y, class_weights=jnp.ones(3)),
      ValueError,
      r"`class_weights` must have shape \(4,\) \(one weight per class\), got class_weights\.shape=\(3,\)",
    ),
    (lambda: jl.cross_entropy(jnp.zeros(()), Y), ValueError, r"`logits` must have a class axis, got a scalar"),
    (
      lambda: jl.cross_entropy(X.astype(jnp.int32), Y),
      TypeError,
      r"jaxloss\.cross_entropy: `logits` must be a floating-point array, got dtype int32",
    ),
    (lambda: jl.nll(X, jnp.zeros(3)), TypeError, r"jaxloss\.nll: `labels` must be an integer array, got dtype float32"),
    (lambda: jl.nll(X, None), TypeError, r"`labels` is required"),
    (lambda: jl.softmax_focal(X, Y, alpha=jnp.ones(2)), ValueError, r"`alpha` must have a scalar or shape \(4,\)"),
    (lambda: jl.softmax_focal(X, Y, gamma=-1.0), ValueError, r"`gamma` must be a non-negative number"),
    (lambda: jl.sigmoid_focal(X, X, alpha=1.5), ValueError, r"`alpha` must be in \[0, 1\], or negative to disable"),
    (lambda: jl.multi_margin(X, Y, p=3), ValueError, r"jaxloss\.multi_margin: `p` must be 1 or 2, got 3"),
    (lambda: jl.hinge(X, jnp.ones(3)), ValueError, r"`scores` and `labels` must have the same shape"),
    (lambda: jl.hinge(X, X, margin="1"), TypeError, r"`margin` must be a number or an array, got '1'"),
    (
      lambda: jl.multilabel_margin(X, jnp.zeros((3, 5), jnp.int32)),
      ValueError,
      r"jaxloss\.multilabel_margin: integer `labels` \(target classes padded with -1\) must have the shape of"
      r" `scores`, got scores\.shape=\(3, 4\) and labels\.shape=\(3, 5\)",
    ),
    (lambda: jl.multilabel_margin(X, X), TypeError, r"`labels` must be an integer array, got dtype float32"),
    (lambda: jl.cross_entropy(X, Y, softcap=jnp.ones(2)), ValueError, r"`softcap` must have shape \(\), got"),
    (
      lambda: jl.binary_cross_entropy_with_logits(X, X, pos_weight=jnp.ones(3)),
      ValueError,
      r"`pos_weight` must broadcast to the shape of `logits` \(3, 4\), got pos_weight\.shape=\(3,\)",
    ),
    (lambda: jl.binary_cross_entropy(X, jnp.ones((3, 5))), ValueError, r"`probs` and `targets` must have the same"),
    (lambda: jl.multilabel_soft_margin(X, X, where=jnp.ones(4, bool)), ValueError, r"`where` must broadcast"),
    (
      lambda: jl.multilabel_soft_margin(X, X, class_weights=jnp.ones(5)),
      ValueError,
      r"`class_weights` must have shape \(4,\)",
    ),
  ],
)
def test_bad_input_fails_at_trace_time(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()


# The checked mode.
@pytest.mark.parametrize(
  "call, pattern",
  [
    (
      lambda c: c(jl.cross_entropy)(X, jnp.array([0, 4, 1])),
      r"jaxloss\.cross_entropy: `labels` must be in \[0, 4\), found 4",
    ),
    (lambda c: c(jl.nll)(X, jnp.array([0, -1, 1])), r"jaxloss\.nll: `labels` must be in \[0, 4\), found -1"),
    (
      lambda c: c(jl.cross_entropy)(X, jnp.array([0, -5, -100]), ignore_index=-100),
      r"`labels` must be in \[0, 4\) or ignore_index=-100, found -5",
    ),
    (lambda c: c(jl.softmax_focal)(X, jnp.array([9, 0, 1])), r"jaxloss\.softmax_focal: `labels` must be in"),
    (lambda c: c(jl.multiclass_hinge)(X, jnp.array([0, 0, 4])), r"jaxloss\.multiclass_hinge: `labels` must be in"),
    (lambda c: c(jl.multi_margin)(X, jnp.array([0, 0, 4])), r"jaxloss\.multi_margin: `labels` must be in"),
    (lambda c: c(jl.poly_cross_entropy)(X, jnp.array([0, 0, 4])), r"jaxloss\.poly_cross_entropy: `labels`"),
    (lambda c: c(jl.hinge)(jnp.zeros(3), jnp.array([1.0, 0.0, -1.0])), r"jaxloss\.hinge: `labels` must be -1 or \+1"),
    (lambda c: c(jl.squared_hinge)(jnp.zeros(2), jnp.array([1.0, 2.0])), r"`labels` must be -1 or \+1, found 2\.0"),
    (lambda c: c(jl.hinge_embedding)(jnp.zeros(2), jnp.array([0.0, 1.0])), r"jaxloss\.hinge_embedding: `labels`"),
    (lambda c: c(jl.soft_margin)(jnp.zeros(2), jnp.array([1, 3])), r"jaxloss\.soft_margin: `labels` must be -1 or"),
    (
      lambda c: c(jl.binary_cross_entropy)(jnp.array([0.5, 1.5]), jnp.ones(2)),
      r"jaxloss\.binary_cross_entropy: `probs` must be in \[0, 1\], found 1\.5",
    ),
    (lambda c: c(jl.binary_cross_entropy)(jnp.ones(2) / 2, jnp.array([-0.5, 1.0])), r"`targets` must be in \[0, 1\]"),
    (
      lambda c: c(jl.binary_cross_entropy_with_logits)(jnp.ones(2), jnp.array([1.0, 2.0])),
      r"`targets` must be in \[0, 1\], found 2\.0",
    ),
    (lambda c: c(jl.sigmoid_focal)(jnp.ones(2), jnp.array([1.0, -1.0])), r"jaxloss\.sigmoid_focal: `targets`"),
    (
      lambda c: c(jl.cross_entropy)(X, jnp.full((3, 4), 0.25).at[1, 2].set(1.25)),
      r"jaxloss\.cross_entropy: `labels` must be in \[0, 1\], found 1\.25",
    ),
    (lambda c: c(jl.multilabel_soft_margin)(X, X.at[0, 0].set(2.0)), r"`targets` must be in \[0, 1\], found 2\.0"),
    (lambda c: c(jl.cross_entropy)(X.at[1, 1].set(jnp.nan), Y), r"jaxloss\.cross_entropy: `logits` contains NaN"),
  ],
)
def test_checked_reports_invalid_values(call, pattern):
  with pytest.raises(checkify.JaxRuntimeError, match=pattern):
    call(jl.checked)
  call(lambda f: f)  # unchecked: a value, no error


def test_checked_accepts_ignored_and_masked_labels():
  y = jnp.array([0, IGNORE, 7])
  value = jl.checked(jl.cross_entropy)(X, y, ignore_index=IGNORE, where=jnp.array([True, True, False]))
  assert float(value) == pytest.approx(np.log(4.0), rel=1e-6)
  assert float(jl.checked(jl.hinge)(jnp.zeros(2), jnp.array([1.0, 5.0]), where=jnp.array([True, False]))) == 1.0


# z-loss and soft-capping (issue 14): cross_entropy keeps the semantics linear_cross_entropy follows.
def t5x_cross_entropy_with_logits(logits, targets, z_loss):
  """t5x/losses.py ``cross_entropy_with_logits`` (the PaLM z-loss), in NumPy float64."""
  logits_sum = _np_logsumexp(logits)[..., None]
  log_softmax = logits - logits_sum
  loss = -np.sum(targets * log_softmax, axis=-1)
  log_z = np.squeeze(logits_sum, axis=-1)
  return loss + z_loss * np.square(log_z)


def test_z_loss_and_softcap_are_the_t5x_formula_on_gemma_capped_logits():
  rng = _rng(30)
  x, y = _logits(rng, (6,))
  x = 20 * x  # far enough out that the capping matters
  _, soft = _soft(rng, (6,))
  cap, z, eps = 30.0, 1e-3, 0.1
  capped = cap * np.tanh(x / cap)
  smoothed = lambda t: (1 - eps) * t + eps / C
  with jax.enable_x64(True):
    options = {"label_smoothing": eps, "z_loss": z, "softcap": cap, "reduction": "none"}
    ours = jl.cross_entropy(jnp.asarray(x), jnp.asarray(y), **options)
    ours_soft = jl.cross_entropy(jnp.asarray(x), jnp.asarray(soft), **options)
    traced = jl.cross_entropy(
      jnp.asarray(x),
      jnp.asarray(y),
      label_smoothing=jnp.asarray(eps),
      z_loss=jnp.asarray(z),
      softcap=jnp.asarray(cap),
      reduction="none",
    )
  np.testing.assert_allclose(ours, t5x_cross_entropy_with_logits(capped, smoothed(np.eye(C)[y]), z), rtol=1e-12)
  np.testing.assert_allclose(ours_soft, t5x_cross_entropy_with_logits(capped, smoothed(soft), z), rtol=1e-12)
  np.testing.assert_allclose(traced, ours, rtol=1e-12)


def test_infinite_softcap_is_exactly_no_capping():
  x, y = (jnp.asarray(a) for a in _logits(_rng(31), (4,)))
  x = x.astype(jnp.float32).at[0, 1].set(-jnp.inf)
  f = lambda x, **kw: jl.cross_entropy(x, y, z_loss=0.01, reduction="none", **kw)
  plain, plain_grad = f(x), jax.grad(lambda x: jnp.sum(f(x)))(x)
  for softcap in (float("inf"), jnp.float32(jnp.inf)):
    np.testing.assert_array_equal(f(x, softcap=softcap), plain)
    np.testing.assert_array_equal(jax.grad(lambda x, c=softcap: jnp.sum(f(x, softcap=c)))(x), plain_grad)
  # The derivative in a traced cap: 0 at inf, and finite next to a -inf logit (which becomes -cap).
  g = jax.grad(lambda c: jl.cross_entropy(x, y, softcap=c))
  assert float(g(jnp.float32(jnp.inf))) == 0.0
  assert np.isfinite(float(g(jnp.float32(2.0))))
  np.testing.assert_allclose(f(x, softcap=2.0)[0], f(x.at[0, 1].set(-1e4), softcap=2.0)[0], rtol=1e-6)


def test_z_loss_is_not_class_weighted_and_ignored_examples_have_none():
  x, y = (jnp.asarray(a) for a in _logits(_rng(32), (5,)))
  y = y.at[1].set(IGNORE)
  options = {"class_weights": CLASS_WEIGHTS, "ignore_index": IGNORE}
  lse = jax.nn.logsumexp(x, axis=-1)
  plain = jl.cross_entropy(x, y, reduction="none", **options)
  with_z = jl.cross_entropy(x, y, z_loss=0.5, reduction="none", **options)
  np.testing.assert_allclose(with_z, plain + np.where(np.asarray(y) == IGNORE, 0.0, 0.5 * lse**2), rtol=1e-6)
  counted = np.asarray(y) != IGNORE
  denominator = np.sum(CLASS_WEIGHTS[np.asarray(y)[counted]])
  np.testing.assert_allclose(jl.cross_entropy(x, y, z_loss=0.5, **options), np.sum(with_z) / denominator, rtol=1e-6)


# Options are data (issue 12): every path the registry's cases do not trace.
TRACED = [
  (jl.cross_entropy, _soft, {"label_smoothing": 0.3, "z_loss": 0.02, "softcap": 2.5}, {"class_weights": CLASS_WEIGHTS}),
  (
    jl.cross_entropy,
    _logits_ignored,
    {"label_smoothing": 0.15, "z_loss": 0.02, "softcap": 2.5},
    {"class_weights": CLASS_WEIGHTS, "ignore_index": IGNORE},
  ),
  (jl.poly_cross_entropy, _soft, {"epsilon": 2.0}, {}),
  (jl.sigmoid_focal, _binary, {"alpha": 0.25, "gamma": 2.0}, {}),
  (jl.sigmoid_focal, _binary_soft, {"alpha": -1.0, "gamma": 0.5}, {}),  # a traced negative alpha disables it
  (jl.multi_margin, _margins, {"margin": 1.0}, {"p": 1}),
]


@pytest.mark.parametrize("fn, make, options, static", TRACED, ids=lambda v: getattr(v, "__name__", None))
def test_traced_options_equal_the_constants_and_finite_differences(fn, make, options, static):
  arrays = make(_rng(33), (4,))
  names = sorted(options)
  with jax.enable_x64(True):
    arrays = [jnp.asarray(a) for a in arrays]
    diff = (0, 1) if fn is not jl.multi_margin and jnp.issubdtype(arrays[1].dtype, jnp.floating) else (0,)

    def f(values, *diff_args):
      full = list(arrays)
      for i, a in zip(diff, diff_args, strict=True):
        full[i] = a
      return fn(*full, **static, **dict(zip(names, values, strict=True)))

    primals = [arrays[i] for i in diff]
    constant, constant_grads = jax.value_and_grad(
      lambda *a: f([options[n] for n in names], *a), argnums=tuple(range(len(diff)))
    )(*primals)
    values = [jnp.asarray(options[n], jnp.float64) for n in names]
    value, grads = jax.jit(jax.value_and_grad(f, argnums=tuple(range(len(diff) + 1))))(values, *primals)
    np.testing.assert_allclose(value, constant, rtol=1e-12)
    for g, cg in zip(grads[1:], constant_grads, strict=True):
      np.testing.assert_allclose(g, cg, rtol=1e-10, atol=1e-14)
    forward = jax.jit(lambda values: f(values, *primals))
    for k, name in enumerate(names):
      shifted = lambda sign, k=k: [v + sign * 1e-6 * (j == k) for j, v in enumerate(values)]
      central = (forward(shifted(1)) - forward(shifted(-1))) / 2e-6
      np.testing.assert_allclose(grads[0][k], central, rtol=1e-6, atol=1e-9, err_msg=name)


def test_traced_zeros_equal_the_constant_specialisations():
  # A -inf logit: the smoothing term is infinite, and every other logit -inf makes log(1 - p_y) -inf.
  x = jnp.array([[2.0, -jnp.inf, 0.0], [0.0, -jnp.inf, -jnp.inf]])
  y = jnp.array([0, 0])
  xb, tb = jnp.array([3.0, -1.0, 0.5]), jnp.array([1.0, 0.0, 0.3])
  calls = [
    (lambda x, v: jl.cross_entropy(x, y, label_smoothing=v, reduction="none"), x),
    (lambda x, v: jl.cross_entropy(x, y, z_loss=v, reduction="none"), x),
    (lambda x, v: jl.softmax_focal(x, y, gamma=v, reduction="none"), x),
    (lambda x, v: jl.sigmoid_focal(x, tb, gamma=v, reduction="none"), xb),
    (lambda x, v: jl.poly_cross_entropy(x, y, epsilon=v, reduction="none"), x),
  ]
  for f, inputs in calls:
    constant = f(inputs, 0.0)
    traced, pullback = jax.vjp(f, inputs, jnp.float32(0.0))
    np.testing.assert_array_equal(traced, constant)
    _, option_grad = pullback(jnp.ones_like(traced))
    grads = jax.grad(lambda x, v, f=f: jnp.sum(f(x, v)), argnums=(0, 1))(inputs, jnp.float32(0.0))
    np.testing.assert_allclose(grads[0], jax.grad(lambda x, f=f: jnp.sum(f(x, 0.0)))(inputs), rtol=1e-6)
    _finite(grads, option_grad)


# Reliability (issue 13).
def test_python_lists_are_arrays():
  log3 = np.log(3.0)
  for fn in (jl.cross_entropy, jl.poly_cross_entropy, jl.softmax_focal, jl.multiclass_hinge, jl.multi_margin):
    assert np.isfinite(float(fn(jnp.zeros((2, 3)), [0, 1])))
  assert float(jl.cross_entropy(jnp.zeros((2, 3)), [0, 1])) == pytest.approx(log3, rel=1e-6)
  assert float(jl.cross_entropy([[0.0, 0.0, 0.0]], [[0.5, 0.5, 0.0]], class_weights=[1.0, 1.0, 2.0])) == pytest.approx(
    log3, rel=1e-6
  )
  assert float(jl.nll([[-1.0, -2.0]], [1])) == 2.0
  assert float(jl.hinge([0.5, -2.0], [1.0, -1.0], margin=jnp.float32(1.0))) == 0.25
  assert float(jl.sigmoid_focal([0.0], [1.0], gamma=0.0, alpha=-1.0)) == pytest.approx(np.log(2.0), rel=1e-6)
  assert float(jl.multilabel_margin([[0.1, 0.2, 0.4, 0.8]], [[3, 0, -1, 1]])) == pytest.approx(0.85, rel=1e-6)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
  "call, pattern",
  [
    (lambda: jl.hinge(X, X, margin=NAN), r"jaxloss\.hinge: `margin` must be a finite number, got nan"),
    (lambda: jl.hinge(X, X, margin=INF), r"`margin` must be a finite number, got inf"),
    (lambda: jl.squared_hinge(X, X, margin=NAN), r"jaxloss\.squared_hinge: `margin` must be a finite number, got nan"),
    (lambda: jl.squared_hinge(X, X, margin=-INF), r"`margin` must be a finite number, got -inf"),
    (
      lambda: jl.hinge_embedding(X, X, margin=NAN),
      r"jaxloss\.hinge_embedding: `margin` must be a finite number, got nan",
    ),
    (lambda: jl.hinge_embedding(X, X, margin=INF), r"`margin` must be a finite number, got inf"),
    (lambda: jl.multi_margin(X, Y, margin=NAN), r"jaxloss\.multi_margin: `margin` must be a finite number, got nan"),
    (lambda: jl.multi_margin(X, Y, margin=INF), r"`margin` must be a finite number, got inf"),
    (
      lambda: jl.poly_cross_entropy(X, Y, epsilon=NAN),
      r"jaxloss\.poly_cross_entropy: `epsilon` must be a finite number",
    ),
    (lambda: jl.poly_cross_entropy(X, X, epsilon=INF), r"`epsilon` must be a finite number, got inf"),
    (lambda: jl.sigmoid_focal(X, X, gamma=NAN), r"jaxloss\.sigmoid_focal: `gamma` must be a non-negative number"),
    (lambda: jl.sigmoid_focal(X, X, gamma=INF), r"`gamma` must be a non-negative number \(and finite\), got inf"),
    (lambda: jl.sigmoid_focal(X, X, alpha=NAN), r"`alpha` must be in \[0, 1\], or negative to disable it, got nan"),
    (lambda: jl.sigmoid_focal(X, X, alpha=INF), r"`alpha` must be in \[0, 1\], or negative to disable it, got inf"),
    (lambda: jl.softmax_focal(X, Y, gamma=NAN), r"jaxloss\.softmax_focal: `gamma` must be a non-negative number"),
    (lambda: jl.softmax_focal(X, Y, gamma=INF), r"`gamma` must be a non-negative number \(and finite\), got inf"),
    (lambda: jl.cross_entropy(X, Y, label_smoothing=NAN), r"`label_smoothing` must be in \[0, 1\], got nan"),
    (lambda: jl.cross_entropy(X, Y, z_loss=NAN), r"jaxloss\.cross_entropy: `z_loss` must be a non-negative number"),
    (lambda: jl.cross_entropy(X, Y, z_loss=INF), r"`z_loss` must be a non-negative number \(and finite\), got inf"),
    (lambda: jl.cross_entropy(X, Y, z_loss=-0.1), r"`z_loss` must be a non-negative number, got -0\.1"),
    (lambda: jl.cross_entropy(X, X, softcap=NAN), r"`softcap` must be None or positive, got nan"),
    (lambda: jl.cross_entropy(X, Y, softcap=0.0), r"`softcap` must be None or positive, got 0\.0"),
  ],
)
def test_nan_and_meaningless_infinite_options_are_errors(call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()


def test_negative_infinite_alpha_disables_the_focal_weighting_as_any_negative_alpha():
  x, t = jnp.array([0.5, -1.0, 2.0]), jnp.array([1.0, 0.0, 0.3])
  for alpha in (-INF, jnp.float32(-jnp.inf)):
    np.testing.assert_array_equal(jl.sigmoid_focal(x, t, alpha=alpha), jl.sigmoid_focal(x, t, alpha=-1.0))
  grads = jax.grad(lambda x, t, a: jl.sigmoid_focal(x, t, alpha=a), argnums=(0, 1, 2))(x, t, jnp.float32(-jnp.inf))
  np.testing.assert_array_equal(grads[1], jax.grad(lambda t: jl.sigmoid_focal(x, t, alpha=-1.0))(t))
  assert float(grads[2]) == 0.0


@pytest.mark.parametrize("gamma, alpha", [(2.0, 0.25), (0.5, -1.0), (1.0, 0.7)])
def test_sigmoid_focal_target_gradient_is_the_formula_derivative_at_binary_targets(gamma, alpha):
  """torch's autograd of torchvision's formula at t in {0, 0.3, 1} (issue 13, item 10)."""
  x = np.tile([-3.0, -0.5, 0.7, 2.5], 3)
  t = np.repeat([0.0, 0.3, 1.0], 4)
  xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
  torch_sigmoid_focal(xt, tt, alpha=alpha, gamma=gamma).sum().backward()
  with jax.enable_x64(True):
    f = lambda x, t, g: jl.sigmoid_focal(x, t, alpha=alpha, gamma=g, reduction="sum")
    for g in (gamma, jnp.asarray(gamma)):
      g_x, g_t = jax.grad(f, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(t), g)
      np.testing.assert_allclose(g_t, tt.grad.numpy(), rtol=1e-10, atol=1e-14)
      np.testing.assert_allclose(g_x, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    # Forward mode gives the same directional derivative.
    _, tangent = jax.jvp(lambda t: f(jnp.asarray(x), t, gamma), (jnp.asarray(t),), (jnp.ones(12),))
    np.testing.assert_allclose(tangent, tt.grad.numpy().sum(), rtol=1e-10)
  # Finite at logits of any size (the power and BCE combined in log space).
  big = jnp.array([1e4, -1e4, 100.0, -100.0, 30.0, -30.0] * 2, jnp.float32)
  binary = jnp.repeat(jnp.array([0.0, 1.0]), 6)
  _finite(jax.grad(lambda x, t: jl.sigmoid_focal(x, t, alpha=alpha, gamma=gamma), argnums=(0, 1))(big, binary))


# multilabel_margin: torch's multilabel_margin_loss, with min-norm subgradients at the hinges.
def test_multilabel_margin_matches_torch_for_every_reduction():
  rng = _rng(34)
  x, y = _target_lists(rng, (6,))
  y[0] = [3, 3, -1, 0, 1]  # a class listed twice counts twice, as torch
  y[1] = -1  # no targets
  y[2] = [4, 0, 2, 1, 3]  # every class a target
  with jax.enable_x64(True):
    for reduction in ("mean", "sum", "none"):
      for xs, ys in ((x, y), (x[3], y[3])):  # [N, C] and a single [C] example
        value, grad = jax.value_and_grad(
          lambda s, r=reduction, ys=ys: jnp.sum(jl.multilabel_margin(s, ys, reduction=r))
        )(jnp.asarray(xs))
        st = torch.tensor(xs, requires_grad=True)
        expected = F.multilabel_margin_loss(st, _t(ys), reduction=reduction)
        expected.sum().backward()
        np.testing.assert_allclose(value, expected.sum().detach().numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(grad, st.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_multilabel_margin_gradient_is_exactly_zero_at_each_kink():
  s, y = np.array([[1.0, 0.0, 0.0, 2.0]]), np.array([[0, 3, -1, 2]])  # 1 - s_0 + s_k == 0: two kinks, loss 0
  g, tangent = _grad_and_tangent(lambda s: jl.multilabel_margin(s, jnp.asarray(y), reduction="none"), jnp.asarray(s))
  st = torch.tensor(s, requires_grad=True)
  F.multilabel_margin_loss(st, _t(y)).backward()
  np.testing.assert_array_equal(g, st.grad.numpy().astype(np.float32))
  np.testing.assert_array_equal(g, [[0.0, 0.0, 0.0, 0.0]])
  np.testing.assert_array_equal(tangent, [0.0])
  g = jax.grad(lambda s: jl.multilabel_margin(s, jnp.array([[0, -1, 0, 0]])))(jnp.array([[1.0, 0.0, 0.5, 0.2]]))
  np.testing.assert_allclose(g, [[-0.5, 0.0, 0.25, 0.25]])


def test_multilabel_margin_out_of_range_labels_give_nan_and_a_zero_gradient():
  s = jnp.asarray(_rng(35).normal(size=(3, 4)), jnp.float32)
  y = jnp.array([[0, -1, 1, 2], [4, -1, 0, 0], [1, 0, -1, -2]])  # 4 >= C, and -2 after the padding (torch raises)
  value = jl.multilabel_margin(s, y, reduction="none")
  assert np.isfinite(float(value[0])) and np.all(np.isnan(np.asarray(value[1:])))
  g = jax.grad(lambda s: jl.multilabel_margin(s, y, where=jnp.array([True, True, False]), reduction="sum"))(s)
  assert np.all(np.asarray(g)[1:] == 0) and np.any(np.asarray(g)[0] != 0)
  with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss\.multilabel_margin: `labels` must be in \[-1, 4\)"):
    jl.checked(jl.multilabel_margin)(s, y)
  jl.checked(jl.multilabel_margin)(s, y, where=jnp.array([True, False, False]))  # masked rows are not read
