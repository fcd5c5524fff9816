"""Registry cases for the classification losses.

Losses over classes get inputs ``[*batch, C]`` (``[batch0, C, batch1]`` for the
``axis=-2`` case) and integer labels ``[*batch]``; the binary losses are
elementwise. ``make`` keeps every input away from the kinks (and ties) by more
than ``check_grads``' finite-difference step.
"""

import numpy as np

import jaxloss as jl
from registry import Case, Option

C = 4
CLASS_WEIGHTS = np.array([0.5, 2.0, 1.0, 1.5])
IGNORE = 2  # a real class index, so ignored labels sit inside [0, C)


def _log_softmax(x, axis=-1):
  m = np.max(x, axis=axis, keepdims=True)
  return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def _labels(rng, batch):
  return rng.integers(0, C, size=batch)


def _logits(rng, batch):
  return rng.normal(size=(*batch, C)) * 2, _labels(rng, batch)


def _logits_axis(rng, batch):
  """Classes on axis -2: ``[batch0, C, batch1]``."""
  x, y = _logits(rng, batch)
  return np.moveaxis(x, -1, -2), y


def _log_probs(rng, batch):
  x, y = _logits(rng, batch)
  return _log_softmax(x), y


def _soft_labels(rng, batch):
  x = rng.normal(size=(*batch, C)) * 2
  return x, np.exp(_log_softmax(rng.normal(size=(*batch, C))))


def _with_ignored(make):
  def inputs(rng, batch):
    x, y = make(rng, batch)
    y = y.copy()
    y.flat[::3] = IGNORE
    return x, y

  return inputs


def _target_weights(args):
  labels = np.asarray(args[1])
  return CLASS_WEIGHTS[labels]


def _target_weights_ignoring(args):
  labels = np.asarray(args[1])
  return np.where(labels == IGNORE, 0.0, CLASS_WEIGHTS[labels])


def _other_class(y):
  return (y + 1) % C


def _class_extremes(rng, batch, *, masked=True):
  """Huge logits, a target at 1e4 over 0 (p_y rounds to 1), and -inf on non-target classes."""
  y = _labels(rng, batch)
  signs = rng.choice([-1.0, 1.0], size=(*batch, C))
  confident = np.zeros((*batch, C))
  np.put_along_axis(confident, y[..., None], 1e4, axis=-1)
  out = [(1e4 * signs, y), (confident, y), (-confident, y)]
  if masked:
    x = rng.normal(size=(*batch, C))
    np.put_along_axis(x, _other_class(y)[..., None], -np.inf, axis=-1)
    only_target = np.full((*batch, C), -np.inf)
    np.put_along_axis(only_target, y[..., None], 0.0, axis=-1)
    out += [(x, y), (only_target, y)]
  return out


def _axis_extremes(rng, batch):
  return [(np.moveaxis(x, -1, -2), y) for x, y in _class_extremes(rng, batch)]


def _ignored_extremes(rng, batch):
  out = [(x, np.where(np.arange(y.size).reshape(y.shape) % 3 == 0, IGNORE, y)) for x, y in _class_extremes(rng, batch)]
  poisoned = np.full((*batch, C), np.nan)
  return [*out, (poisoned, np.full(batch, IGNORE))]  # every target ignored: value 0, gradient 0


def _ignored_extremes_finite(rng, batch):
  """As _ignored_extremes without -inf logits (label smoothing makes them an infinite loss)."""
  return [(x, y) for x, y in _ignored_extremes(rng, batch) if not np.any(np.isneginf(x))]


def _log_prob_extremes(rng, batch):
  return [(_log_softmax(x) if np.all(np.isfinite(x)) else x, y) for x, y in _class_extremes(rng, batch)]


def _soft_extremes(rng, batch):
  """Huge logits against soft and one-hot targets; -inf logits where the target has no mass."""
  y = _labels(rng, batch)
  one_hot = np.eye(C)[y]
  x = rng.normal(size=(*batch, C))
  x = np.where(one_hot > 0, x, -np.inf)
  _, soft = _soft_labels(rng, batch)
  return [
    (1e4 * rng.choice([-1.0, 1.0], size=(*batch, C)), soft),
    (1e4 * one_hot, one_hot),
    (x, one_hot),
  ]


def _soft_extremes_finite(rng, batch):
  return _soft_extremes(rng, batch)[:2]


def _probs(rng, batch):
  return rng.uniform(0.05, 0.95, size=batch), rng.uniform(0.0, 1.0, size=batch)


def _probs_extremes(rng, batch):
  t = rng.choice([0.0, 0.5, 1.0], size=batch)
  return [
    (np.zeros(batch), t),
    (np.ones(batch), t),
    (np.full(batch, 1e-30), np.ones(batch)),
    (rng.choice([0.0, 1.0], size=batch), rng.choice([0.0, 1.0], size=batch)),
  ]


def _binary_logits(rng, batch):
  return rng.normal(size=batch) * 2, rng.uniform(0.0, 1.0, size=batch)


def _binary_logit_extremes(rng, batch):
  t = rng.choice([0.0, 1.0], size=batch)
  return [
    (np.full(batch, 1e4), t),
    (np.full(batch, -1e4), t),
    (1e4 * (2 * t - 1), t),  # p_t -> 1: the focal power at its infinite-slope point for gamma < 1
    (np.full(batch, 40.0), np.ones(batch)),
    (np.zeros(batch), rng.uniform(0, 1, size=batch)),
  ]


def _signed(rng, batch, margin=1.0):
  """Scores with ``y s - margin`` in +-[0.1, 2]: away from the hinge kink."""
  y = rng.choice([-1.0, 1.0], size=batch)
  gap = rng.choice([-1.0, 1.0], size=batch) * rng.uniform(0.1, 2.0, size=batch)
  return y * (margin + gap), y


def _signed_extremes(rng, batch, margin=1.0):
  y = rng.choice([-1.0, 1.0], size=batch)
  return [(np.full(batch, 1e4), y), (np.full(batch, -1e4), y), (y * margin, y), (np.zeros(batch), y)]


def _distances(rng, batch):
  """Non-negative inputs at least 0.1 from the margin 1; labels +-1."""
  x = rng.uniform(0.0, 2.9, size=batch)
  return np.where(x < 0.9, x, x + 0.2), rng.choice([-1.0, 1.0], size=batch)


def _distance_extremes(rng, batch):
  y = rng.choice([-1.0, 1.0], size=batch)
  return [(np.full(batch, 1e4), y), (np.full(batch, -1e4), y), (np.ones(batch), y), (np.zeros(batch), y)]


def _margins(rng, batch, margin=1.0):
  """Scores whose every margin ``margin - s_y + s_j`` (and Crammer-Singer's) is at least 0.05 from 0, no ties."""
  x, y = _logits(rng, batch)
  while True:
    s_y = np.take_along_axis(x, y[..., None], axis=-1)
    z = margin - s_y + x
    others = np.where(np.eye(C, dtype=bool)[y], np.inf, np.abs(z))
    close = np.any(others < 0.05, axis=-1)
    sorted_x = np.sort(x, axis=-1)
    close |= np.any(np.diff(sorted_x, axis=-1) < 0.05, axis=-1)
    if not close.any():
      return x, y
    x[close] = rng.normal(size=(int(close.sum()), C)) * 2


def _multilabel(rng, batch):
  return rng.normal(size=(*batch, C)) * 2, rng.choice([0.0, 1.0], size=(*batch, C))


def _multilabel_extremes(rng, batch):
  t = rng.choice([0.0, 1.0], size=(*batch, C))
  return [(np.full((*batch, C), 1e4), t), (np.full((*batch, C), -1e4), t), (1e4 * (2 * t - 1), t)]


def _score_extremes(rng, batch):
  """Huge scores, and the exact kinks/ties: all scores equal (true class ties everything)."""
  y = _labels(rng, batch)
  return [
    (1e4 * rng.choice([-1.0, 1.0], size=(*batch, C)), y),
    (np.zeros((*batch, C)), y),
    (np.broadcast_to(np.arange(C, dtype=float), (*batch, C)).copy(), y),
  ]


def _target_lists(rng, batch):
  """Each example's target classes (a random subset, in random order), then -1, then arbitrary valid entries."""
  labels = rng.integers(-1, C, size=(*batch, C))
  for row in labels.reshape(-1, C):
    targets = rng.permutation(C)[: rng.integers(0, C + 1)]
    row[: targets.size] = targets
    if targets.size < C:
      row[targets.size] = -1
  return labels


def _multilabel_margins(rng, batch):
  """Scores whose every difference ``1 - s_j + s_k`` is at least 0.05 from 0 (away from every hinge kink)."""
  x = rng.normal(size=(*batch, C)) * 2
  while True:
    z = np.abs(1 - x[..., :, None] + x[..., None, :])
    close = np.any(z < 0.05, axis=(-2, -1))
    if not close.any():
      return x, _target_lists(rng, batch)
    x[close] = rng.normal(size=(int(close.sum()), C)) * 2


def _multilabel_margin_extremes(rng, batch):
  """Huge scores, every pair at a kink (scores 0, 1, 2, ...), no targets, and every class a target."""
  y = _target_lists(rng, batch)
  steps = np.broadcast_to(np.arange(C, dtype=float), (*batch, C)).copy()
  return [
    (1e4 * rng.choice([-1.0, 1.0], size=(*batch, C)), y),
    (steps, y),
    (steps, np.full((*batch, C), -1)),
    (rng.normal(size=(*batch, C)), np.broadcast_to(np.arange(C), (*batch, C)).copy()),
  ]


POS_WEIGHT = np.array([2.5])  # broadcasts along the last axis, as torch's [C]-shaped pos_weight

# One case per loss and per code path that matters (class weights, ignore_index, smoothing, probability
# labels, another axis, gamma < 1): every case costs ~15 compilations in the invariants.
CASES = [
  Case("nll", jl.nll, _log_probs, _log_prob_extremes),
  Case(
    "nll-class_weights-ignore_index",
    jl.nll,
    _with_ignored(_log_probs),
    _ignored_extremes,
    kwargs={"class_weights": CLASS_WEIGHTS, "ignore_index": IGNORE},
    count_weights=_target_weights_ignoring,
  ),
  Case(
    "cross_entropy",
    jl.cross_entropy,
    _logits,
    _class_extremes,
    options={
      "label_smoothing": Option(0.2, invalid=1.5),
      "z_loss": Option(0.05, invalid=-1.0),
      "softcap": Option(3.0, invalid=-1.0),
    },
  ),
  Case(
    "cross_entropy-axis-class_weights-z_loss-softcap",
    jl.cross_entropy,
    _logits_axis,
    _axis_extremes,
    kwargs={"axis": -2, "class_weights": CLASS_WEIGHTS, "z_loss": 0.01, "softcap": 4.0},
    count_weights=_target_weights,
  ),
  Case(
    "cross_entropy-smoothing-class_weights-ignore_index",
    jl.cross_entropy,
    _with_ignored(_logits),
    _ignored_extremes_finite,
    kwargs={"label_smoothing": 0.2, "class_weights": CLASS_WEIGHTS, "ignore_index": IGNORE},
    count_weights=_target_weights_ignoring,
  ),
  Case("cross_entropy-probs", jl.cross_entropy, _soft_labels, _soft_extremes, diff=(0, 1)),
  Case(
    "cross_entropy-probs-smoothing-class_weights-z_loss-softcap",
    jl.cross_entropy,
    _soft_labels,
    _soft_extremes_finite,
    kwargs={"label_smoothing": 0.1, "class_weights": CLASS_WEIGHTS, "z_loss": 0.01, "softcap": 4.0},
    diff=(0, 1),
  ),
  Case("binary_cross_entropy", jl.binary_cross_entropy, _probs, _probs_extremes, diff=(0, 1)),
  Case(
    "binary_cross_entropy_with_logits-pos_weight",
    jl.binary_cross_entropy_with_logits,
    _binary_logits,
    _binary_logit_extremes,
    kwargs={"pos_weight": POS_WEIGHT},
    diff=(0, 1),
  ),
  Case(
    "sigmoid_focal-soft_targets",  # gamma < 1 at p_t -> 1: tests/test_classification.py
    jl.sigmoid_focal,
    _binary_logits,
    _binary_logit_extremes,
    diff=(0, 1),
    options={"alpha": Option(0.25, invalid=1.5), "gamma": Option(0.5, invalid=-1.0)},
  ),
  Case(
    "softmax_focal-alpha",
    jl.softmax_focal,
    _logits,
    _class_extremes,
    kwargs={"alpha": CLASS_WEIGHTS},
    options={"gamma": Option(0.5, invalid=-1.0)},
  ),
  Case("hinge", jl.hinge, _signed, _signed_extremes, options={"margin": Option(1.0, invalid=np.inf)}),
  Case("squared_hinge", jl.squared_hinge, _signed, _signed_extremes, options={"margin": Option(1.0, invalid=np.inf)}),
  Case("multiclass_hinge", jl.multiclass_hinge, _margins, _score_extremes),
  Case(
    "multi_margin-p2-class_weights",
    jl.multi_margin,
    _margins,
    _score_extremes,
    kwargs={"p": 2, "class_weights": CLASS_WEIGHTS},
    options={"margin": Option(1.0, invalid=np.inf)},
  ),
  Case("multilabel_margin", jl.multilabel_margin, _multilabel_margins, _multilabel_margin_extremes),
  Case(
    "hinge_embedding",
    jl.hinge_embedding,
    _distances,
    _distance_extremes,
    options={"margin": Option(1.0, invalid=np.inf)},
  ),
  Case("soft_margin", jl.soft_margin, _signed, _signed_extremes),
  Case(
    "multilabel_soft_margin-class_weights",
    jl.multilabel_soft_margin,
    _multilabel,
    _multilabel_extremes,
    kwargs={"class_weights": CLASS_WEIGHTS},
  ),
  Case(
    "poly_cross_entropy",
    jl.poly_cross_entropy,
    _logits,
    _class_extremes,
    options={"epsilon": Option(1.0, invalid=np.inf)},
  ),
  Case(
    "poly_cross_entropy-probs",
    jl.poly_cross_entropy,
    _soft_labels,
    _soft_extremes,
    kwargs={"epsilon": 2.0},
    diff=(0, 1),
  ),
]
