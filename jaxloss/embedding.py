"""Metric-learning losses: margins, triplets, contrastive pairs, cosine embeddings, InfoNCE.

Embeddings are ``[..., D]``: the embedding axis is last and leading dimensions
are batch, so the per-example loss has shape ``[...]`` and ``weights`` /
``where`` broadcast to it (``margin_ranking`` is elementwise over scores of any
shape). Inputs are computed in float32 at least (float16 and bfloat16 are
promoted; float64 stays float64 when x64 is enabled).

Distances use :func:`jaxloss._custom.norm`, whose gradient is exactly 0 where
two embeddings coincide (the minimum-norm subgradient), not NaN (``optax``) or a
push along the all-ones direction (``torch``'s ``eps``); :func:`contrastive`
takes its distance as :func:`jaxloss._custom.sqrt` of the sum of squares its
similar term already needs, with the same derivative 0 at a coincident pair.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.typing import ArrayLike

from jaxloss import _checks, _custom, _gather, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss


def _embeddings(where, *named: tuple[str, ArrayLike]):
  """Validated, promoted, masked embeddings ``[..., D]`` of equal shapes, and the mask over ``[...]``."""
  of = f"the per-example loss (`{named[0][0]}` without its last axis)"
  *embeddings, mask = _inputs.prepare(*((arg, x, "floating") for arg, x in named), where=where, axes=-1, of=of)
  if embeddings[0].ndim < 1:
    raise ValueError(
      f"{_checks.name()}: `{named[0][0]}` must have shape [..., D] (rank >= 1), got shape {embeddings[0].shape}."
    )
  return (*embeddings, mask)


def _pair_labels(labels, x1: jax.Array, mask: jax.Array | None) -> jax.Array:
  """One label per pair of embeddings ``x1`` ``[..., D]``, in their dtype; masked labels become 1 (valid here)."""
  of = " (the batch shape of `x1`, one per embedding)"
  return _inputs.per_example("labels", labels, x1.shape[:-1], x1.dtype, mask, fill=1, of=of)


@loss
def margin_ranking(
  x1: ArrayLike,
  x2: ArrayLike,
  labels: ArrayLike,
  *,
  margin: Numeric = 0.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Margin ranking loss: ``x1`` should rank above ``x2`` where ``labels`` is 1, below where it is -1.

  .. math::
    \ell_i = \max(0,\ -y_i (x_{1,i} - x_{2,i}) + \text{margin})

  Args:
    x1: floating scores of any shape ``[...]``.
    x2: scores of the same shape.
    labels: 1 or -1, same shape (any real dtype).
    margin: how far apart the scores must be for a zero loss (finite; an
      infinite margin would make the loss constant, 0 or inf). May be traced
      (a 0-d array or tracer, e.g. a schedule); a traced non-finite margin
      gives a meaningless value (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Subgradient: exactly 0 at the kink ``-y (x1 - x2) + margin = 0`` (torch's
  ``clamp_min`` passes the full slope there). Labels other than +-1 are reported
  by :func:`jaxloss.checked`. Values match
  ``torch.nn.functional.margin_ranking_loss``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> x1, x2 = jnp.array([2.0, 0.0]), jnp.array([1.0, 1.0])
    >>> print(jl.margin_ranking(x1, x2, jnp.array([1.0, 1.0]), margin=0.5, reduction="none"))
    [0.  1.5]
  """
  a, b, y, mask = _inputs.prepare(
    ("x1", x1, "floating"), ("x2", x2, "floating"), ("labels", labels, "real"), where=where
  )
  _inputs.signs(y, mask)
  margin = _inputs.number("margin", margin, a.dtype)
  loss = _custom.relu(margin - y * (a - b))
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


def _smaller(a: jax.Array, b: jax.Array) -> jax.Array:
  """``min(a, b)`` whose derivative at a tie is the average of both sides (chosen, not ``jnp.minimum``'s accident)."""
  return jnp.where(a < b, a, jnp.where(b < a, b, 0.5 * (a + b)))


@loss
def triplet_margin(
  anchor: ArrayLike,
  positive: ArrayLike,
  negative: ArrayLike,
  *,
  margin: Numeric = 1.0,
  p: Static[float] = 2.0,
  eps: Numeric = 1e-6,
  swap: Static[bool] = False,
  distance_fn: Static[Callable[[jax.Array, jax.Array], jax.Array] | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Triplet margin loss: the anchor should be closer to the positive than to the negative by ``margin``.

  .. math::
    \ell_i = \max(0,\ d(a_i, p_i) - d(a_i, n_i) + \text{margin}),
    \qquad d(x, y) = \lVert x - y + \epsilon \rVert_p

  With ``swap``, :math:`d(a_i, n_i)` is replaced by
  :math:`\min(d(a_i, n_i), d(p_i, n_i))` (Balntas et al., 2016).

  Args:
    anchor: floating embeddings ``[..., D]``.
    positive: embeddings of the same shape.
    negative: embeddings of the same shape.
    margin: non-negative, finite margin. May be traced (a 0-d array or
      tracer); a traced negative or non-finite margin gives a meaningless
      value (:func:`jaxloss.checked` reports it).
    p: the norm degree, ``p >= 1`` (finite).
    eps: non-negative, finite, added to each difference before the norm, as
      torch does (values match ``torch.nn.functional.pairwise_distance``).
      May be traced, and is then differentiable (the distance's derivative in
      it); a traced negative or non-finite eps gives a meaningless value
      (:func:`jaxloss.checked` reports it).
    swap: use the distance swap.
    distance_fn: optional ``f(x, y) -> [...]`` distance replacing the
      ``p``-norm (then ``p`` and ``eps`` are ignored), as in torch's
      ``triplet_margin_with_distance_loss``. It is a static argument: pass the
      same function object each call (a new ``lambda`` each call retraces).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Subgradients: exactly 0 at the hinge's kink; where two embeddings coincide
  the distance's gradient is exactly 0 for both (the minimum-norm subgradient;
  torch's ``eps`` gives ``+-1/D^(1/p)`` along the all-ones direction, optax NaN
  for ``p = 2``), so ``anchor == positive`` gives a finite, symmetric gradient.
  With ``swap``, a tie between the two negative distances (every
  ``anchor == positive`` triplet) takes the average of both, the minimum-norm
  choice there. Values and gradients elsewhere match
  ``torch.nn.functional.triplet_margin_loss`` and
  ``triplet_margin_with_distance_loss``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> a = jnp.array([[0.0, 0.0]])
    >>> print(jl.triplet_margin(a, jnp.array([[3.0, 4.0]]), jnp.array([[0.0, 1.0]]), eps=0.0))
    5.0
  """
  p = _inputs.number("p", p, ok=lambda p: p >= 1, expected="a number >= 1")  # static: selects the norm
  _checks.option("distance_fn", distance_fn, distance_fn is None or callable(distance_fn), "None or a callable")
  a, pos, neg, mask = _embeddings(where, ("anchor", anchor), ("positive", positive), ("negative", negative))
  margin = _inputs.number("margin", margin, a.dtype, lambda m: m >= 0, "a non-negative number")
  eps = _inputs.number("eps", eps, a.dtype, lambda e: e >= 0, "a non-negative number")

  def distance(x, y):
    if distance_fn is None:
      return _custom.shifted_norm(x - y, p, eps)
    d = jnp.asarray(distance_fn(x, y))
    if d.shape != x.shape[:-1] or not jnp.issubdtype(d.dtype, jnp.floating):
      raise ValueError(
        f"{_checks.name()}: `distance_fn` must return one floating distance per example, shape {x.shape[:-1]}, got"
        f" shape {d.shape} and dtype {d.dtype}."
      )
    return d.astype(x.dtype)

  pairs = ((a, pos), (a, neg), (pos, neg)) if swap else ((a, pos), (a, neg))
  if distance_fn is None and p == 2:  # one range check (lax.cond) for every distance
    d = _custom.distances(pairs, eps, _inputs.arrival_dtype(a, anchor, positive, negative))
  else:
    d = tuple(distance(x, y) for x, y in pairs)
  closest_negative = _smaller(d[1], d[2]) if swap else d[1]
  loss = jax.nn.relu(d[0] - closest_negative + margin)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@loss
def contrastive(
  x1: ArrayLike,
  x2: ArrayLike,
  labels: ArrayLike,
  *,
  margin: Numeric = 1.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Contrastive loss: similar pairs pulled together, dissimilar ones pushed beyond ``margin``.

  .. math::
    \ell_i = y_i\, d_i^2 + (1 - y_i) \max(0,\ \text{margin} - d_i)^2,
    \qquad d_i = \lVert x_{1,i} - x_{2,i} \rVert_2

  Args:
    x1: floating embeddings ``[..., D]``.
    x2: embeddings of the same shape.
    labels: ``[...]``, 1 for a similar pair and 0 for a dissimilar one
      (values in between interpolate); any real dtype.
    margin: non-negative distance beyond which dissimilar pairs cost nothing
      (finite: an infinite margin gives every dissimilar pair an infinite
      loss). May be traced (a 0-d array or tracer); a traced negative margin
      gives a meaningless value and an infinite one NaN
      (:func:`jaxloss.checked` reports both).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Subgradient: where ``x1 == x2`` the distance has gradient exactly 0 (its
  minimum-norm subgradient), so the loss's gradient is 0 and finite there for
  either label (``sqrt`` of the squared distance gives NaN). The loss is
  continuously differentiable at ``d = margin``. Labels outside [0, 1] are
  reported by :func:`jaxloss.checked`. Reference: Hadsell, Chopra and LeCun,
  "Dimensionality Reduction by Learning an Invariant Mapping", CVPR 2006 (with
  labels 1 = similar and without the factor 1/2).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> x1, x2 = jnp.zeros((2, 2)), jnp.array([[3.0, 4.0], [0.0, 0.5]])
    >>> print(jl.contrastive(x1, x2, jnp.array([1.0, 0.0]), reduction="none"))
    [25.    0.25]
  """
  a, b, mask = _embeddings(where, ("x1", x1), ("x2", x2))
  y = _pair_labels(labels, a, mask)
  margin = _inputs.number("margin", margin, a.dtype, lambda m: m >= 0, "a non-negative number")
  _checks.debug_values("labels", y, lambda: (y >= 0) & (y <= 1), "in [0, 1]")
  difference = a - b
  squared = jnp.sum(difference * difference, axis=-1)
  # The distance from the sum of squares the similar term already needs (sqrt with derivative 0 at 0: the
  # minimum-norm subgradient of a coincident pair), not a second, overflow-scaled norm pass: squared is unscaled
  # here anyway, and the scaled norm's range check ran the forward at 2.7x the jnp expression (16384x128).
  short = jax.nn.relu(margin - _custom.sqrt(squared))
  loss = y * squared + (1 - y) * short * short
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


# torch's cosine_embedding_loss adds this to both squared magnitudes (aten/src/ATen/native/Loss.cpp).
_COSINE_EPSILON = 1e-12


@loss
def cosine_embedding(
  x1: ArrayLike,
  x2: ArrayLike,
  labels: ArrayLike,
  *,
  margin: Numeric = 0.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Cosine embedding loss: aligned pairs for ``labels`` 1, cosine below ``margin`` for -1.

  .. math::
    \ell_i = \begin{cases} 1 - \cos(x_{1,i}, x_{2,i}) & y_i = 1 \\
      \max(0,\ \cos(x_{1,i}, x_{2,i}) - \text{margin}) & y_i = -1 \end{cases},
    \qquad \cos(u, v) = \frac{u \cdot v}{\sqrt{(\lVert u\rVert^2 + 10^{-12})(\lVert v\rVert^2 + 10^{-12})}}

  Args:
    x1: floating embeddings ``[..., D]``.
    x2: embeddings of the same shape.
    labels: ``[...]``, 1 or -1 (any real dtype); other values give 0, as in torch.
    margin: in ``[-1, 1]``. May be traced (a 0-d array or tracer); a traced
      margin outside ``[-1, 1]`` is used as given, a NaN gives NaN
      (:func:`jaxloss.checked` reports both).
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Edges: the ``1e-12`` inside the norms (torch's) keeps value and gradient
  finite at zero vectors: a zero embedding has cosine 0, and its gradient, like
  torch's, is large (about ``1e6 / ||other||``) but finite. The hinge has
  gradient exactly 0 at ``cos == margin``. Labels other than +-1 are reported
  by :func:`jaxloss.checked`. Values and gradients match
  ``torch.nn.functional.cosine_embedding_loss``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> x1, x2 = jnp.array([[1.0, 0.0], [1.0, 1.0]]), jnp.array([[0.0, 2.0], [2.0, 2.0]])
    >>> print(jl.cosine_embedding(x1, x2, jnp.array([1.0, -1.0]), reduction="none"))
    [1. 1.]
  """
  a, b, mask = _embeddings(where, ("x1", x1), ("x2", x2))
  y = _pair_labels(labels, a, mask)
  _inputs.signs(y, mask)
  margin = _inputs.number("margin", margin, a.dtype, lambda m: (m >= -1) & (m <= 1), "in [-1, 1]")
  magnitudes = (jnp.sum(a * a, axis=-1) + _COSINE_EPSILON) * (jnp.sum(b * b, axis=-1) + _COSINE_EPSILON)
  cosine = jnp.sum(a * b, axis=-1) / jnp.sqrt(magnitudes)
  zero = jnp.zeros((), cosine.dtype)
  # one nested select (XLA:CPU fuses it as one per-pair pass; the sum of two selects took two)
  loss = jnp.where(y == 1, 1 - cosine, jnp.where(y == -1, jax.nn.relu(cosine - margin), zero))
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


@loss
def ntxent(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  temperature: Numeric = 0.07,
  axis_name: Static[str | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""NT-Xent (normalised temperature-scaled cross-entropy, InfoNCE): each embedding should be
  closer in cosine to those sharing its label than to the others.

  .. math::
    \ell_i = \frac{1}{|P_i|} \sum_{j \in P_i}
      -\log \frac{e^{s_{ij}}}{e^{s_{ij}} + \sum_{k \in N_i} e^{s_{ik}}},
    \qquad s_{ij} = \frac{\cos(e_i, e_j)}{\tau}

  with :math:`P_i` the other embeddings with label :math:`y_i` (positives) and
  :math:`N_i` those with another label (negatives), within one batch.

  Args:
    embeddings: floating ``[..., B, D]``: batches of ``B`` embeddings; leading
      dimensions hold independent batches.
    labels: integer ``[..., B]``; embeddings with the same label are positive
      pairs (e.g. ``[0, 0, 1, 1]`` for two augmented views of two images).
    temperature: positive, finite softmax temperature :math:`\tau` (an
      infinite one would make the loss a constant). May be traced, e.g.
      learned as ``exp(log_tau)`` (CLIP); a traced temperature <= 0 gives a
      meaningless value, NaN at 0 (:func:`jaxloss.checked` reports it).
    axis_name: ``None``, or the name of a ``shard_map`` mesh axis over which
      the set axis ``B`` is sharded (data parallelism): each device passes its
      ``B / n`` embeddings, labels, weights and mask; they are scored against
      every device's embeddings (all-gathered), the local rows' gradients are
      those of the unsharded loss, ``"mean"`` and ``"sum"`` are the unsharded
      loss's value on every device, and ``"none"`` gives the local anchors'.
      Memory ``O(B / n * B)`` per device.
    reduction: ``"mean"`` (default, over anchors with at least one positive),
      ``"sum"`` or ``"none"``.
    weights: optional per-anchor weights broadcastable to ``[..., B]``.
    where: optional boolean mask broadcastable to ``[..., B]``; a masked
      embedding takes no part at all: neither anchor, positive nor negative
      (padding).

  Returns:
    A scalar, or ``[..., B]`` (one value per anchor) for ``reduction="none"``;
    float32 for half inputs.

  Edges: cosines use ``optax.safe_norm`` with floor ``finfo(dtype).eps``, as
  optax, so zero embeddings give a finite value and gradient. An anchor without
  positives has loss 0 and is left out of the mean; one without negatives has
  loss 0. Matches ``optax.losses.ntxent`` when every anchor has the same number
  of positives (SimCLR pairs); optax averages over positive pairs, which
  ``weights`` equal to each anchor's number of positives reproduces in general.
  Reference: Chen et al., "A Simple Framework for Contrastive Learning of Visual
  Representations", ICML 2020.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> e = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    >>> print(jl.ntxent(e, jnp.array([0, 0, 1, 1]), temperature=1.0))
    0.5978082
  """
  x = _checks.floating("embeddings", embeddings)
  if x.ndim < 2:
    raise ValueError(
      f"{_checks.name()}: `embeddings` must have shape [..., B, D] (rank >= 2), got embeddings.shape={x.shape}."
    )
  y = _checks.integer("labels", labels)
  if y.shape != x.shape[:-1]:
    raise ValueError(
      f"{_checks.name()}: `labels` must have shape [..., B], the shape of `embeddings` without its last axis"
      f" {x.shape[:-1]}, got labels.shape={y.shape}."
    )
  x, mask = _embeddings(where, ("embeddings", x))
  temperature = _inputs.number("temperature", temperature, x.dtype, lambda t: t > 0, "a positive number")
  valid = jnp.ones(y.shape, bool) if mask is None else mask
  loss, count = _ntxent_per_anchor(x, y, valid, temperature, axis_name)
  return _gather.reduce(loss, reduction=reduction, weights=weights, where=valid & (count > 0), axis_name=axis_name)


def _ntxent_per_anchor(
  x: jax.Array, y: jax.Array, valid: jax.Array, temperature, axis_name: str | None = None
) -> tuple[jax.Array, jax.Array]:
  """NT-Xent per anchor of ``x`` ``[..., B, D]`` and its number of positives; ``temperature`` may be traced.

  With ``axis_name`` (inside ``shard_map``) the anchors are this device's rows
  and the positives and negatives are those of every device (gathered).
  """
  unit = x / optax.safe_norm(x, jnp.finfo(x.dtype).eps, axis=-1, keepdims=True)
  columns, y_all, valid_all = (_gather.replicated(a, y.ndim - 1) for a in (unit, y, valid))
  offset: jax.Array | int = 0
  if axis_name is not None:
    columns, y_all, valid_all = (_gather.gather(a, axis_name, axis=y.ndim - 1) for a in (unit, y, valid))
    offset = _gather.row_offset(y.shape[-1], axis_name)
  similarity = jnp.einsum("...id,...jd->...ij", unit, columns) / temperature
  rows, members = similarity.shape[-2:]
  own = jnp.arange(rows, dtype=jnp.int32)[:, None] + offset == jnp.arange(members, dtype=jnp.int32)[None, :]
  same = y[..., :, None] == y_all[..., None, :]
  both_valid = valid[..., :, None] & valid_all[..., None, :]
  positive = same & both_valid & ~jnp.broadcast_to(own, same.shape)
  # The negatives' log-sum-exp: an anchor without negatives is told by its max (-inf), not by another pass over
  # the B x B pairs, and masked pairs are -inf before the exp (0 after it, no NaN can reach the gradient).
  negatives = jnp.where(~same & both_valid, similarity, -jnp.inf)
  top = lax.stop_gradient(jnp.max(negatives, axis=-1, keepdims=True, initial=-jnp.inf))  # an empty set: -inf
  none = top == -jnp.inf
  top = jnp.where(none, 0, top)
  total = jnp.sum(jnp.exp(negatives - top), axis=-1, keepdims=True)
  normaliser = jnp.where(none, -jnp.inf, jnp.log(jnp.where(none, 1, total)) + top)
  pair_loss = jax.nn.softplus(normaliser - similarity)  # -log(e^s / (e^s + sum_k e^s_k))
  count = jnp.sum(positive, axis=-1).astype(x.dtype)
  return _reduce.safe_divide(jnp.sum(jnp.where(positive, pair_loss, 0), axis=-1), count), count
