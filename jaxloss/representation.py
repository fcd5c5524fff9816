"""Representation-learning losses: CLIP, SigLIP, SupCon, angular margins, Circle, multi-similarity, mined triplets.

Set losses take embeddings ``[..., B, D]``: the embedding axis is last, the one
before it is a set (a batch) of ``B`` members scored against each other, and
leading dimensions hold independent sets, as :func:`jaxloss.ntxent`. The
per-example loss is one value per member ``[..., B]`` (an anchor, an image-text
pair); ``weights`` and ``where`` broadcast to it, and a False ``where`` removes
a member from its set altogether (padding): it is neither anchor, positive nor
negative. The angular-margin losses are classification heads: embeddings
``[..., D]`` against a class matrix ``[C, D]``.

Inputs are computed in float32 at least (float16 and bfloat16 are promoted;
float64 stays float64 when x64 is enabled). Every temperature, scale, bias and
margin may be traced: they are learned parameters in practice (CLIP's
``exp(log_scale)``, SigLIP's ``t`` and ``b``).

A batch sharded over an explicit mesh axis (``jax.sharding.AxisType.Explicit``,
under ``jax.set_mesh`` or not) needs no ``axis_name``: the columns are
resharded replicated along the set axis (``[B@data, B]`` similarities) and the
losses equal the single-device ones.

Each loss's core is a private function taking the similarity inputs
explicitly (the local rows, the columns they are scored against and the
offset of the local rows among them), so a sharded form can call it on a
shard's rows against gathered or passed-around columns.
"""

from __future__ import annotations

from typing import overload

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxloss import _checks, _custom, _gather, _inputs, _reduce
from jaxloss._api import Numeric, Static, loss

# Inputs ------------------------------------------------------------------------------------------


def _sets(where, *named: tuple[str, ArrayLike]) -> tuple[jax.Array, ...]:
  """Validated, promoted, masked sets ``[..., B, D]`` of equal shapes, and the mask ``[..., B]`` (or None)."""
  of = f"the per-member loss (`{named[0][0]}` without its last axis)"
  *sets, mask = _inputs.prepare(*((arg, x, "floating") for arg, x in named), where=where, axes=-1, of=of)
  if sets[0].ndim < 2:
    raise ValueError(
      f"{_checks.name()}: `{named[0][0]}` must have shape [..., B, D] (rank >= 2), got shape {sets[0].shape}."
    )
  return (*sets, mask)


def _set_labels(labels, x: jax.Array) -> jax.Array:
  """Integer ``labels`` ``[..., B]`` for the set ``x`` ``[..., B, D]``."""
  y = _checks.integer("labels", labels)
  if y.shape != x.shape[:-1]:
    raise ValueError(
      f"{_checks.name()}: `labels` must have shape [..., B], the shape of `embeddings` without its last axis"
      f" {x.shape[:-1]}, got labels.shape={y.shape}."
    )
  return y


def _unit(x: jax.Array) -> jax.Array:
  """``x / ||x||`` over the last axis, the norm floored at ``finfo.eps`` (a zero embedding stays 0), as ntxent.

  ``optax.safe_norm``'s value and gradient (below the floor the norm is the
  constant ``eps``: the gradient of ``x / eps``) in one pass over ``x``:
  ``x * rsqrt(max(|x|^2, eps^2))``, the floor a ``where`` so that nothing
  differentiates the square root at 0 (safe_norm computes the norm twice).
  """
  floor = float(jnp.finfo(x.dtype).eps) ** 2
  squares = jnp.sum(x * x, axis=-1, keepdims=True)
  return x * lax.rsqrt(jnp.where(squares > floor, squares, floor))


def _targets(shape: tuple[int, ...], row_offset) -> jax.Array:
  """``[..., R, C]``: True where column ``row_offset + r`` is row ``r``'s own (``row_offset`` may be traced)."""
  rows, columns = shape[-2:]
  return jnp.broadcast_to(jnp.arange(rows)[:, None] + row_offset == jnp.arange(columns)[None, :], shape)


def _pairs(shape: tuple[int, ...], rows: jax.Array | None, columns: jax.Array | None) -> jax.Array:
  """The pair mask of ``shape`` ``[..., R, C]`` from row and column masks ``[..., R]``, ``[..., C]`` (None: all)."""
  out = jnp.ones(shape, bool)
  if rows is not None:
    out = out & jnp.broadcast_to(rows[..., :, None], shape)
  if columns is not None:
    out = out & jnp.broadcast_to(columns[..., None, :], shape)
  return out


@overload
def _columns(a: jax.Array, axis: int = -1) -> jax.Array: ...
@overload
def _columns(a: None, axis: int = -1) -> None: ...
def _columns(a: jax.Array | None, axis: int = -1) -> jax.Array | None:
  """The column copy of ``a`` (a set ``[..., B, D]`` with ``axis=-2``, or its labels or mask ``[..., B]``).

  With the set axis sharded over an explicit mesh axis (outside ``shard_map``)
  the columns are replicated along it (:func:`jaxloss._gather.replicated`): a
  ``[B@data, B@data]`` similarity is illegal, ``[B@data, B]`` is not; else ``a``.
  """
  return None if a is None else _gather.replicated(a, axis)


# CLIP --------------------------------------------------------------------------------------------


def _clip_positive(logits: jax.Array, row_offset) -> jax.Array:
  """The logit of each row's pair ``(r, row_offset + r)`` in ``logits`` ``[..., R, C]`` (0 if out of range)."""
  return jnp.sum(jnp.where(_targets(logits.shape, row_offset), logits, 0), axis=-1)


def _clip_rows(
  logits: jax.Array, positive: jax.Array, valid: jax.Array | None, label_smoothing, axis: int = -1
) -> jax.Array:
  """Cross-entropy of each query of ``logits`` ``[..., R, C]`` whose target logit is ``positive``.

  The queries are the rows (``axis=-1``: the columns are the classes) or the
  columns (``axis=-2``: the text-to-image direction of a square block, read in
  place: a transposed copy of the ``B x B`` logits costs ~1.5x the whole loss
  on CPU). ``valid`` ``[..., C]`` or ``[..., R]`` (None: all) masks the
  classes; ``label_smoothing`` spreads that mass uniformly over them, as
  torch's ``cross_entropy``.
  """
  shape = logits.shape
  classes = None
  if valid is not None:
    classes = _pairs(shape, None, valid) if axis == -1 else _pairs(shape, valid, None)
  if classes is None:
    normaliser = jax.nn.logsumexp(logits, axis=axis)
  else:
    normaliser = _custom.logsumexp(logits, classes, axis=axis)
  if _inputs.is_constant(label_smoothing, 0.0):
    return normaliser - positive
  if classes is None:
    average = jnp.mean(logits, axis=axis)
  else:
    count = jnp.sum(classes, axis=axis, dtype=logits.dtype)
    average = _reduce.safe_divide(jnp.sum(jnp.where(classes, logits, 0), axis=axis), count)
  return normaliser - (1 - label_smoothing) * positive - label_smoothing * average


def _clip_per_row(
  x_local: jax.Array,
  y_all: jax.Array,
  row_offset,
  temperature,
  label_smoothing=0.0,
  valid_all: jax.Array | None = None,
) -> jax.Array:
  """One direction of CLIP for the rows ``x_local`` ``[..., R, D]`` against every column ``y_all`` ``[..., C, D]``.

  Row ``r``'s positive is column ``row_offset + r``; both inputs are already
  normalised (or not, for ``normalize=False``); ``valid_all`` masks columns.
  Returns the per-row cross-entropy ``[..., R]`` (masked rows are the caller's).
  """
  logits = jnp.einsum("...id,...jd->...ij", x_local, y_all) / temperature
  return _clip_rows(logits, _clip_positive(logits, row_offset), valid_all, label_smoothing)


@loss
def clip(
  image_embeddings: ArrayLike,
  text_embeddings: ArrayLike,
  *,
  temperature: Numeric = 0.07,
  normalize: Static[bool] = True,
  label_smoothing: Numeric = 0.0,
  axis_name: Static[str | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""CLIP's symmetric InfoNCE: each image should match its own text among the batch's texts, and back.

  .. math::
    \ell_i = \tfrac12 \Big(-\log \frac{e^{s_{ii}}}{\sum_j e^{s_{ij}}}
      - \log \frac{e^{s_{ii}}}{\sum_j e^{s_{ji}}}\Big),
    \qquad s_{ij} = \frac{\cos(u_i, v_j)}{\tau}

  over the ``B x B`` similarities of images :math:`u` and texts :math:`v`
  (dot products instead of cosines without ``normalize``). The mean over pairs
  is CLIP's loss, the average of the image-to-text and text-to-image
  cross-entropies. With label smoothing :math:`\varepsilon` each direction's
  target is :math:`(1 - \varepsilon)` on the pair and
  :math:`\varepsilon / B` on every member, as torch's ``cross_entropy``.

  Args:
    image_embeddings: floating ``[..., B, D]``: ``B`` images per set; leading
      dimensions hold independent sets.
    text_embeddings: ``[..., B, D]``, the texts; text ``i`` belongs to image ``i``.
    temperature: positive, finite softmax temperature :math:`\tau`. May be
      traced: CLIP learns it as ``temperature = exp(-log_scale)`` (its logit
      scale ``exp(log_scale)``, initialised to ``1 / 0.07``); a traced
      temperature <= 0 gives a meaningless value, NaN or inf at 0
      (:func:`jaxloss.checked` reports it).
    normalize: L2-normalise the embeddings first (CLIP does); False takes
      plain dot products.
    label_smoothing: in ``[0, 1]``. May be traced; a traced value outside
      ``[0, 1]`` is used as given (:func:`jaxloss.checked` reports it).
    axis_name: ``None``, or the name of a ``shard_map`` mesh axis over which
      the set axis ``B`` is sharded (data parallelism): each device passes its
      ``B / n`` members (and their weights and mask); each side is scored against the other side of
      every device (all-gathered, open_clip's ``gather_with_grad``); the local rows'
      gradients are those of the unsharded loss, ``"mean"`` and ``"sum"`` are
      the unsharded loss's value on every device, and ``"none"`` gives the
      local rows'. Memory ``O(B / n * B)`` per device.
    reduction: ``"mean"`` (default, over pairs), ``"sum"`` or ``"none"``.
    weights: optional per-pair weights broadcastable to ``[..., B]``.
    where: optional boolean mask broadcastable to ``[..., B]``; a masked pair
      takes no part at all: its image and text are nobody's negatives (padding).

  Returns:
    A scalar, or ``[..., B]`` (one value per pair) for ``reduction="none"``;
    float32 for half inputs.

  Edges: a zero embedding has cosine 0 with everything (the norm is floored
  at ``finfo(dtype).eps``, as :func:`jaxloss.ntxent`), with a finite gradient.
  A set of one pair has loss 0.

  Matches: the pseudo-code of Radford et al. (``(cross_entropy(logits, arange)
  + cross_entropy(logits.T, arange)) / 2``) and open_clip's ``ClipLoss``
  (``logit_scale = 1 / temperature``).

  References: Radford et al., "Learning Transferable Visual Models From Natural
  Language Supervision", ICML 2021.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> images = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> texts = jnp.array([[1.0, 0.2], [0.1, 1.0]])
    >>> print(f"{jl.clip(images, texts, temperature=1.0):.4f}")
    0.3591
    >>> log_scale = jnp.log(1 / 0.07)  # CLIP's learned logit scale
    >>> g = jax.grad(lambda s: jl.clip(images, texts, temperature=jnp.exp(-s)))(log_scale)
  """
  u, v, mask = _sets(where, ("image_embeddings", image_embeddings), ("text_embeddings", text_embeddings))
  temperature = _inputs.number("temperature", temperature, u.dtype, lambda t: t > 0, "a positive number")
  label_smoothing = _inputs.label_smoothing(label_smoothing, u.dtype)
  if normalize:
    u, v = _unit(u), _unit(v)
  if axis_name is not None:
    axis = u.ndim - 2
    u_all, v_all = _gather.gather(u, axis_name, axis), _gather.gather(v, axis_name, axis)
    mask_all = None if mask is None else _gather.gather(mask, axis_name, axis)
    offset = _gather.row_offset(u.shape[-2], axis_name)
    images = _clip_per_row(u, v_all, offset, temperature, label_smoothing, mask_all)
    texts = _clip_per_row(v, u_all, offset, temperature, label_smoothing, mask_all)
    return _gather.reduce(0.5 * (images + texts), reduction=reduction, weights=weights, where=mask, axis_name=axis_name)
  logits = jnp.einsum("...id,...jd->...ij", u, _columns(v, -2)) / temperature
  if _gather.sharded(logits):  # rows sharded over an explicit mesh axis: no gather of the diagonal
    positive = jnp.sum(jnp.where(_gather.like(_targets(logits.shape, 0), logits), logits, 0), axis=-1)
  else:
    positive = jnp.diagonal(logits, axis1=-2, axis2=-1)  # both directions' targets, read once
  images = _clip_rows(logits, positive, _columns(mask), label_smoothing)
  texts = _clip_rows(logits, positive, mask, label_smoothing, axis=-2)
  return _reduce.reduce(0.5 * (images + texts), reduction=reduction, weights=weights, where=mask)


# SigLIP ------------------------------------------------------------------------------------------


def _siglip_rows(
  x_local: jax.Array,
  y_block: jax.Array,
  row_offset,
  temperature,
  bias,
  valid_block: jax.Array | None = None,
) -> jax.Array:
  """SigLIP's summed pair losses of the rows ``x_local`` ``[..., R, D]`` against a block of columns ``[..., C, D]``.

  Row ``r``'s positive is column ``row_offset + r`` of the block (none if out
  of range: a block of another shard, passed around the ring); inputs are
  normalised; ``valid_block`` masks the block's columns. Returns ``[..., R]``.
  """
  logits = jnp.einsum("...id,...jd->...ij", x_local, y_block) * temperature + bias
  target = _gather.like(_targets(logits.shape, row_offset), logits)
  pair = jax.nn.softplus(jnp.where(target, -logits, logits))  # -log sigmoid(z logit), z = +1 on the pair, -1 off it
  if valid_block is not None:
    pair = jnp.where(_pairs(logits.shape, None, valid_block), pair, 0)
  return jnp.sum(pair, axis=-1)


@loss
def siglip(
  x: ArrayLike,
  y: ArrayLike,
  *,
  temperature: Numeric = 10.0,
  bias: Numeric = -10.0,
  axis_name: Static[str | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""SigLIP's pairwise sigmoid loss: every image-text pair of the batch is its own binary problem.

  .. math::
    \ell_i = \sum_j -\log \sigma\big(z_{ij} (t \cos(x_i, y_j) + b)\big),
    \qquad z_{ij} = \begin{cases} 1 & i = j \\ -1 & i \ne j \end{cases}

  The mean over ``i`` is the paper's loss, ``-sum(log_sigmoid(z * logits)) / B``.

  Args:
    x: floating ``[..., B, D]``, e.g. images; leading dimensions hold
      independent sets. Normalised inside, as in the paper's pseudo-code.
    y: ``[..., B, D]``, e.g. texts; ``y[i]`` belongs to ``x[i]``.
    temperature: the positive, finite logit scale :math:`t` (a multiplier; the
      paper learns ``t = exp(t')`` from ``t' = log 10``). May be traced; a
      traced value <= 0 gives a meaningless value (:func:`jaxloss.checked`
      reports it).
    bias: the finite logit bias :math:`b`, learned from ``-10`` (the paper's
      init, which keeps the many negatives from dominating early). May be
      traced; a traced NaN or inf gives NaN or inf (:func:`jaxloss.checked`
      reports it).
    axis_name: ``None``, or the name of a ``shard_map`` mesh axis over which
      the set axis ``B`` is sharded (data parallelism): each device passes its
      ``B / n`` members (and their weights and mask); the other side's blocks of ``B / n`` travel
      around the ring (``ppermute``, the paper's chunked form), so each row is
      scored against every device's columns while no device holds more than a
      ``B / n x B / n`` block of logits (memory ``O((B / n)^2)``, in the
      backward pass too); the local rows'
      gradients are those of the unsharded loss, ``"mean"`` and ``"sum"`` are
      the unsharded loss's value on every device, and ``"none"`` gives the
      local rows'. Under ``axis_name`` the gradient is a ``custom_vjp``: reverse mode
      only.
    reduction: ``"mean"`` (default, over rows), ``"sum"`` or ``"none"``.
    weights: optional per-row weights broadcastable to ``[..., B]``.
    where: optional boolean mask broadcastable to ``[..., B]``; a masked
      pair takes no part at all, neither row nor column (padding).

  Returns:
    A scalar, or ``[..., B]`` (each row's summed pair losses) for
    ``reduction="none"``; float32 for half inputs.

  Edges: a zero embedding has cosine 0 (the norm is floored at
  ``finfo(dtype).eps``) with a finite gradient; ``softplus`` keeps every pair
  finite for any logit.

  Matches: the pseudo-code of Zhai et al. (big_vision's ``sigmoid`` loss).

  References: Zhai et al., "Sigmoid Loss for Language Image Pre-Training",
  ICCV 2023.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> print(f"{jl.siglip(x, x, temperature=10.0, bias=-5.0):.4f}")
    0.0134
  """
  u, v, mask = _sets(where, ("x", x), ("y", y))
  temperature = _inputs.number("temperature", temperature, u.dtype, lambda t: t > 0, "a positive number")
  bias = _inputs.number("bias", bias, u.dtype)
  if axis_name is not None:
    valid = jnp.ones(u.shape[:-1], bool) if mask is None else mask
    loss = _gather.ring(_siglip_rows, _unit(u), _unit(v), valid, (temperature, bias), axis_name)
    return _gather.reduce(loss, reduction=reduction, weights=weights, where=mask, axis_name=axis_name)
  loss = _siglip_rows(_unit(u), _columns(_unit(v), -2), 0, temperature, bias, _columns(mask))
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=mask)


# SupCon ------------------------------------------------------------------------------------------


def _supcon_per_anchor(
  x_local: jax.Array,
  x_all: jax.Array,
  labels_local: jax.Array,
  labels_all: jax.Array,
  row_offset,
  temperature,
  valid_local: jax.Array | None = None,
  valid_all: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """SupCon (L_out) of the anchors ``x_local`` ``[..., R, D]`` against the members ``x_all`` ``[..., C, D]``.

  Anchor ``r`` is member ``row_offset + r`` (left out of its own sums); inputs
  are normalised. Returns the per-anchor loss and number of positives, both
  ``[..., R]``.
  """
  similarity = jnp.einsum("...id,...jd->...ij", x_local, x_all) / temperature
  shape = similarity.shape
  others = ~_targets(shape, row_offset) & _pairs(shape, valid_local, valid_all)
  positive = others & (labels_local[..., :, None] == labels_all[..., None, :])
  normaliser = _custom.logsumexp(similarity, others)
  count = jnp.sum(positive, axis=-1, dtype=similarity.dtype)
  # -mean over positives of log(e^s_p / sum_a e^s_a); the normaliser is finite wherever a positive exists.
  positives = jnp.sum(jnp.where(positive, similarity, 0), axis=-1)
  safe = jnp.where(count > 0, normaliser, 0)
  return _reduce.safe_divide(count * safe - positives, count), count


@loss
def supcon(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  temperature: Numeric = 0.1,
  axis_name: Static[str | None] = None,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Supervised contrastive loss (SupCon, the L_out variant): each embedding should be closer in cosine to
  those sharing its label than to the rest of the batch.

  .. math::
    \ell_i = -\frac{1}{|P_i|} \sum_{p \in P_i}
      \log \frac{e^{s_{ip}}}{\sum_{a \ne i} e^{s_{ia}}},
    \qquad s_{ij} = \frac{\cos(e_i, e_j)}{\tau}

  with :math:`P_i` the other members with label :math:`y_i`; the denominator
  runs over every other member, positives included (where
  :func:`jaxloss.ntxent` has one positive and the negatives).

  Args:
    embeddings: floating ``[..., B, D]``; leading dimensions hold independent sets.
    labels: integer ``[..., B]``; members with the same label are positives.
    temperature: positive, finite temperature :math:`\tau`. May be traced
      (learned as ``exp`` of a parameter); a traced temperature <= 0 gives a
      meaningless value, NaN at 0 (:func:`jaxloss.checked` reports it).
    axis_name: ``None``, or the name of a ``shard_map`` mesh axis over which
      the set axis ``B`` is sharded (data parallelism): each device passes its
      ``B / n`` members (and their weights and mask); the anchors are scored against every device's
      members (embeddings and labels all-gathered); the local rows'
      gradients are those of the unsharded loss, ``"mean"`` and ``"sum"`` are
      the unsharded loss's value on every device, and ``"none"`` gives the
      local rows'. Memory ``O(B / n * B)`` per device.
    reduction: ``"mean"`` (default, over anchors with at least one positive),
      ``"sum"`` or ``"none"``.
    weights: optional per-anchor weights broadcastable to ``[..., B]``.
    where: optional boolean mask broadcastable to ``[..., B]``; a masked
      member is neither anchor, positive nor part of any denominator (padding).

  Returns:
    A scalar, or ``[..., B]`` (one value per anchor) for ``reduction="none"``;
    float32 for half inputs.

  Edges: an anchor without positives (a class with one member) has loss 0 and
  leaves the mean. A zero embedding has cosine 0 (the norm is floored at
  ``finfo(dtype).eps``) with a finite gradient.

  Matches: pytorch-metric-learning's ``SupConLoss`` (cosine similarity,
  ``temperature=0.1``); the reference implementation of Khosla et al. with
  ``base_temperature = temperature`` on normalised features.

  References: Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020
  (equation 2).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> e = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    >>> print(f"{jl.supcon(e, jnp.array([0, 0, 1, 1]), temperature=1.0):.4f}")
    0.5978
  """
  x = _checks.floating("embeddings", embeddings)
  if x.ndim < 2:
    raise ValueError(
      f"{_checks.name()}: `embeddings` must have shape [..., B, D] (rank >= 2), got embeddings.shape={x.shape}."
    )
  y = _set_labels(labels, x)
  x, mask = _sets(where, ("embeddings", x))
  temperature = _inputs.number("temperature", temperature, x.dtype, lambda t: t > 0, "a positive number")
  unit = _unit(x)
  unit_all, y_all, mask_all = _columns(unit, -2), _columns(y), _columns(mask)
  offset: jax.Array | int = 0
  if axis_name is not None:
    axis = y.ndim - 1
    unit_all, y_all = _gather.gather(unit, axis_name, axis), _gather.gather(y, axis_name, axis)
    mask_all = None if mask is None else _gather.gather(mask, axis_name, axis)
    offset = _gather.row_offset(y.shape[-1], axis_name)
  loss, count = _supcon_per_anchor(unit, unit_all, y, y_all, offset, temperature, mask, mask_all)
  valid = count > 0 if mask is None else mask & (count > 0)
  return _gather.reduce(loss, reduction=reduction, weights=weights, where=valid, axis_name=axis_name)


def _labelled_set(embeddings, labels, where) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Embeddings ``[..., B, D]`` (masked members 0), integer labels ``[..., B]`` and the member mask (all True)."""
  x = _checks.floating("embeddings", embeddings)
  if x.ndim < 2:
    raise ValueError(
      f"{_checks.name()}: `embeddings` must have shape [..., B, D] (rank >= 2), got embeddings.shape={x.shape}."
    )
  y = _set_labels(labels, x)
  x, mask = _sets(where, ("embeddings", x))
  return x, y, jnp.ones(y.shape, bool) if mask is None else mask


def _label_pairs(y: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``[..., B, B]`` positive pairs (same label, another member) and negative pairs (another label), valid only."""
  shape = (*y.shape, y.shape[-1])
  both = _pairs(shape, valid, _columns(valid))
  same = y[..., :, None] == _columns(y)[..., None, :]
  return same & both & ~_targets(shape, 0), ~same & both


# Angular margins ---------------------------------------------------------------------------------


@jax.custom_jvp
def _margin_cosine(c: jax.Array, m1: jax.Array, m2: jax.Array, m3: jax.Array) -> jax.Array:
  """InsightFace's combined margin ``cos(m1 theta + m2) - m3`` of ``c = cos(theta)``, with its threshold.

  Past ``m1 theta + m2 > pi``, where the margin cosine stops decreasing in
  ``theta``, it is InsightFace's linear fallback ``c - m2 sin(m2) - m3``. The
  derivative in ``c`` is ``m1 sin(m1 theta + m2) / sin(theta)``: at ``theta``
  0 and pi (``|c| = 1``), where it is infinite, it is taken as 0, and since
  ``c`` is a cosine its own gradient vanishes there, so the loss's gradient is
  exactly 0 in the direction of the kink (its minimum-norm subgradient), not
  ``inf * 0 = NaN``.
  """
  c = jnp.clip(c, -1, 1)
  theta = jnp.arccos(c)
  angle = m1 * theta + m2
  return jnp.where(angle > jnp.pi, c - m2 * jnp.sin(m2) - m3, jnp.cos(angle) - m3)


@_margin_cosine.defjvp
def _margin_cosine_jvp(primals, tangents):
  (c, m1, m2, m3), (dc, dm1, dm2, dm3) = primals, tangents
  y = _margin_cosine(c, m1, m2, m3)
  interior = (c > -1) & (c < 1)
  safe = jnp.where(interior, c, 0)  # the double where: arccos and 1 / sin(theta) never see |c| = 1
  theta = jnp.where(interior, jnp.arccos(safe), jnp.arccos(jnp.clip(c, -1, 1)))
  angle = m1 * theta + m2
  sine = jnp.sin(angle)
  slope = jnp.where(interior, m1 * sine / jnp.sqrt(1 - safe * safe), 0)
  margin = -sine * (theta * dm1 + dm2) - dm3 + slope * dc
  inside = (c >= -1) & (c <= 1)
  fallback = jnp.where(inside, dc, 0) - (jnp.sin(m2) + m2 * jnp.cos(m2)) * dm2 - dm3
  return y, jnp.where(angle > jnp.pi, fallback, margin)


def _angular_margin(
  embeddings, class_weights_matrix, labels, scale, m1, m2, m3, reduction, weights, where, names=("m1", "m2", "m3")
):
  """The shared body of :func:`angular_margin`, :func:`arcface` and :func:`cosface` (``names``: the margins' own)."""
  x = _checks.floating("embeddings", embeddings)
  w = _checks.floating("class_weights_matrix", class_weights_matrix)
  if x.ndim < 1:
    raise ValueError(f"{_checks.name()}: `embeddings` must have shape [..., D] (rank >= 1), got shape {x.shape}.")
  if w.ndim != 2 or w.shape[-1] != x.shape[-1]:
    raise ValueError(
      f"{_checks.name()}: `class_weights_matrix` must have shape [C, D] with D = {x.shape[-1]} (the embedding"
      f" size), got class_weights_matrix.shape={w.shape}."
    )
  x, mask = _inputs.prepare(("embeddings", x, "floating"), where=where, axes=-1, dtype_from=(w,))
  w = w.astype(x.dtype)
  dtype = x.dtype
  scale = _inputs.number("scale", scale, dtype, lambda s: s > 0, "a positive number")
  m1, m2, m3 = (_inputs.number(n, m, dtype) for n, m in zip(names, (m1, m2, m3), strict=True))
  cosine = jnp.einsum("...d,cd->...c", _unit(x), _unit(w))
  target = _inputs.class_labels("embeddings", cosine, labels, mask)
  one_hot = jnp.broadcast_to(jnp.arange(cosine.shape[-1]), cosine.shape) == target.index[..., None]
  if _inputs.is_constant(m1, 1.0) and _inputs.is_constant(m2, 0.0):
    # CosFace: smooth, no angle needed, and the target logit is read in the log-sum-exp's pass
    logits = scale * (cosine - jnp.where(one_hot, m3, 0))
    loss = jax.nn.logsumexp(logits, axis=-1) - jnp.sum(jnp.where(one_hot, logits, 0), axis=-1)
  else:
    c = jnp.sum(jnp.where(one_hot, cosine, 0), axis=-1)
    margin = _margin_cosine(c, *(jnp.asarray(m, dtype) for m in (m1, m2, m3)))
    logits = scale * jnp.where(one_hot, margin[..., None], cosine)
    loss = jax.nn.logsumexp(logits, axis=-1) - scale * margin
  loss = jnp.where(target.in_range, loss, jnp.nan)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=target.mask)


@loss
def angular_margin(
  embeddings: ArrayLike,
  class_weights_matrix: ArrayLike,
  labels: ArrayLike,
  *,
  scale: Numeric = 64.0,
  m1: Numeric = 1.0,
  m2: Numeric = 0.5,
  m3: Numeric = 0.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Additive angular margin softmax (InsightFace's combined margin): SphereFace, ArcFace and CosFace in one.

  .. math::
    \ell = -\log \frac{e^{s \psi(\theta_y)}}{e^{s \psi(\theta_y)} + \sum_{j \ne y} e^{s \cos\theta_j}},
    \qquad \psi(\theta) = \cos(m_1 \theta + m_2) - m_3

  with :math:`\cos\theta_j` the cosine between the embedding and class
  :math:`j`'s centre. Past :math:`m_1\theta + m_2 > \pi`, where
  :math:`\psi` stops decreasing, :math:`\psi = \cos\theta - m_2 \sin m_2 - m_3`
  (InsightFace's threshold fallback).

  Args:
    embeddings: floating ``[..., D]``.
    class_weights_matrix: ``[C, D]``, one (learned) centre per class;
      normalised inside, as the embeddings.
    labels: integer ``[...]``, each embedding's class in ``[0, C)``; an
      out-of-range label gives NaN (:func:`jaxloss.checked` reports it).
    scale: the positive, finite logit scale :math:`s`. May be traced; a
      traced value <= 0 gives a meaningless value (:func:`jaxloss.checked`
      reports it).
    m1: the multiplicative angular margin (SphereFace; 1 for none). May be
      traced (differentiable); a traced NaN gives NaN.
    m2: the additive angular margin (ArcFace). May be traced
      (differentiable); a traced NaN gives NaN.
    m3: the additive cosine margin (CosFace). May be traced
      (differentiable); a traced NaN gives NaN.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Edges: at :math:`\theta_y` 0 or :math:`\pi` (an embedding on its class centre
  or opposite it) :math:`\psi` has an infinite slope in :math:`\cos\theta`
  (``arccos``'s), while the cosine's own gradient is 0: the gradient there is
  exactly the minimum-norm 0 along that term (``arccos`` would give NaN), and
  finite nearby. The cosine is clipped to ``[-1, 1]`` against rounding. A zero
  embedding or centre has cosine 0 (norms floored at ``finfo(dtype).eps``).
  With ``m1 = 1, m2 = 0`` (constants) the target logit is the plain
  ``cos - m3``.

  Matches: InsightFace's ``CombinedMarginLoss`` (ArcFace ``m2``, CosFace
  ``m3``, without ``easy_margin``) followed by ``cross_entropy``.

  References: Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
  Recognition", CVPR 2019; Wang et al., "CosFace", CVPR 2018; Liu et al.,
  "SphereFace", CVPR 2017.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> e, centres = jnp.array([[1.0, 1.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> print(f"{jl.angular_margin(e, centres, jnp.array([0]), scale=4.0, m2=0.5):.4f}")
    1.8697
  """
  return _angular_margin(embeddings, class_weights_matrix, labels, scale, m1, m2, m3, reduction, weights, where)


@loss
def arcface(
  embeddings: ArrayLike,
  class_weights_matrix: ArrayLike,
  labels: ArrayLike,
  *,
  scale: Numeric = 64.0,
  margin: Numeric = 0.5,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""ArcFace: :func:`angular_margin` with the additive angular margin ``m2 = margin`` alone.

  .. math::
    \ell = -\log \frac{e^{s \cos(\theta_y + m)}}{e^{s \cos(\theta_y + m)} + \sum_{j \ne y} e^{s \cos\theta_j}}

  Args:
    embeddings: floating ``[..., D]``.
    class_weights_matrix: ``[C, D]``, one (learned) centre per class.
    labels: integer ``[...]``, each embedding's class in ``[0, C)``.
    scale: the positive, finite logit scale :math:`s`. May be traced; a
      traced value <= 0 gives a meaningless value (:func:`jaxloss.checked`
      reports it).
    margin: the angular margin :math:`m` (radians). May be traced
      (differentiable); a traced NaN gives NaN.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Edges: as :func:`angular_margin` (exactly 0 along the target term at
  :math:`\theta_y` 0 and :math:`\pi`; InsightFace's fallback
  :math:`\cos\theta - m \sin m` past :math:`\theta + m > \pi`).

  References: Deng et al., "ArcFace", CVPR 2019 (InsightFace ``ArcFace``).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> e, centres = jnp.array([[1.0, 1.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> print(f"{jl.arcface(e, centres, jnp.array([0]), scale=4.0):.4f}")
    1.8697
  """
  names = ("m1", "margin", "m3")
  return _angular_margin(
    embeddings, class_weights_matrix, labels, scale, 1.0, margin, 0.0, reduction, weights, where, names
  )


@loss
def cosface(
  embeddings: ArrayLike,
  class_weights_matrix: ArrayLike,
  labels: ArrayLike,
  *,
  scale: Numeric = 64.0,
  margin: Numeric = 0.35,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""CosFace (large margin cosine loss): :func:`angular_margin` with the cosine margin ``m3 = margin`` alone.

  .. math::
    \ell = -\log \frac{e^{s (\cos\theta_y - m)}}{e^{s (\cos\theta_y - m)} + \sum_{j \ne y} e^{s \cos\theta_j}}

  Args:
    embeddings: floating ``[..., D]``.
    class_weights_matrix: ``[C, D]``, one (learned) centre per class.
    labels: integer ``[...]``, each embedding's class in ``[0, C)``.
    scale: the positive, finite logit scale :math:`s`. May be traced; a
      traced value <= 0 gives a meaningless value (:func:`jaxloss.checked`
      reports it).
    margin: the cosine margin :math:`m`. May be traced (differentiable); a
      traced NaN gives NaN.
    reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``.

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Edges: smooth in the cosines; a zero embedding has cosine 0 (norms floored
  at ``finfo(dtype).eps``).

  References: Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face
  Recognition", CVPR 2018 (``s = 64, m = 0.35``).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> e, centres = jnp.array([[1.0, 1.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> print(f"{jl.cosface(e, centres, jnp.array([0]), scale=4.0):.4f}")
    1.6204
  """
  names = ("m1", "m2", "margin")
  return _angular_margin(
    embeddings, class_weights_matrix, labels, scale, 1.0, 0.0, margin, reduction, weights, where, names
  )


# Circle and multi-similarity ---------------------------------------------------------------------


def _cosines(x: jax.Array) -> jax.Array:
  """The ``[..., B, B]`` cosine similarities of a set ``[..., B, D]``."""
  unit = _unit(x)
  return jnp.einsum("...id,...jd->...ij", unit, _columns(unit, -2))


@loss
def circle(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: Numeric = 0.25,
  gamma: Numeric = 256.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Circle loss: within-class similarities :math:`s_p` above :math:`1 - m`, between-class :math:`s_n` below
  :math:`m`, each weighted by how far it is from its optimum.

  .. math::
    \ell_i = \log\Big(1 + \sum_{n} e^{\gamma \alpha_n (s_n - m)}
      \sum_{p} e^{-\gamma \alpha_p (s_p - 1 + m)}\Big),
    \qquad \alpha_p = [1 + m - s_p]_+,\ \alpha_n = [s_n + m]_+

  over anchor :math:`i`'s positives :math:`p` (same label, another member)
  and negatives :math:`n`, with cosine similarities :math:`s = 1 - d`,
  :math:`d = [1 - \cos]_+`, as keras computes them.

  Args:
    embeddings: floating ``[..., B, D]``; leading dimensions hold independent
      sets. Normalised inside (keras expects normalised embeddings).
    labels: integer ``[..., B]``.
    margin: the relaxation :math:`m` (finite). May be traced
      (differentiable); a traced NaN or inf gives NaN (:func:`jaxloss.checked`
      reports it).
    gamma: the positive, finite scale :math:`\gamma`. May be traced
      (differentiable); a traced value <= 0 gives a meaningless value
      (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default, over anchors with a positive and a
      negative), ``"sum"`` or ``"none"``.
    weights: optional per-anchor weights broadcastable to ``[..., B]``.
    where: optional boolean mask broadcastable to ``[..., B]``; a masked
      member is neither anchor, positive nor negative (padding).

  Returns:
    A scalar, or ``[..., B]`` (one value per anchor) for ``reduction="none"``;
    float32 for half inputs.

  Edges: an anchor without positives or without negatives has loss 0 and
  leaves the mean (keras masks losses that are not > 0). The weights
  :math:`\alpha` are differentiated, as in keras (pytorch-metric-learning
  detaches them); the clamps have derivative 0 at their kinks (duplicate
  embeddings: :math:`d = 0`).

  Matches: ``keras.losses.Circle(gamma, margin)`` (``remove_diagonal=True``)
  on L2-normalised embeddings, its mean over anchors whose loss is > 0.

  References: Sun et al., "Circle Loss: A Unified Perspective of Pair
  Similarity Optimization", CVPR 2020 (``m = 0.25``, ``gamma = 256``).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> e = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    >>> print(f"{jl.circle(e, jnp.array([0, 0, 1, 1]), gamma=4.0):.4f}")
    0.8279
  """
  x, y, valid = _labelled_set(embeddings, labels, where)
  margin = _inputs.number("margin", margin, x.dtype)
  gamma = _inputs.number("gamma", gamma, x.dtype, lambda g: g > 0, "a positive number")
  positive, negative = _label_pairs(y, valid)
  distance = jax.nn.relu(1 - _cosines(x))
  pull = jnp.asarray(gamma * jax.nn.relu(margin + distance) * (distance - margin))
  push = jnp.asarray(gamma * jax.nn.relu(1 + margin - distance) * (1 - margin - distance))
  pulled, pushed = _custom.logsumexp(pull, positive), _custom.logsumexp(push, negative)
  has_both = (pulled != -jnp.inf) & (pushed != -jnp.inf)  # -inf exactly where nothing is selected
  loss = jnp.where(has_both, jax.nn.softplus(jnp.where(has_both, pulled + pushed, 0)), 0)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=valid & has_both)


@loss
def multi_similarity(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  alpha: Numeric = 2.0,
  beta: Numeric = 50.0,
  base: Numeric = 0.5,
  epsilon: Numeric = 0.1,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Multi-similarity loss with its pair mining: soft-weighted positives and negatives, informative pairs only.

  .. math::
    \ell_i = \frac{1}{\alpha} \log\Big(1 + \sum_{p \in \tilde P_i} e^{-\alpha (s_{ip} - \lambda)}\Big)
      + \frac{1}{\beta} \log\Big(1 + \sum_{n \in \tilde N_i} e^{\beta (s_{in} - \lambda)}\Big)

  with cosine similarities :math:`s` and the mined pairs
  :math:`\tilde N_i = \{n : s_{in} + \epsilon > \min_{p} s_{ip}\}`,
  :math:`\tilde P_i = \{p : s_{ip} - \epsilon < \max_{n} s_{in}\}` (the
  minimum and maximum over all of anchor :math:`i`'s positives and
  negatives).

  Args:
    embeddings: floating ``[..., B, D]``; leading dimensions hold independent sets.
    labels: integer ``[..., B]``.
    alpha: the positive, finite positive-pair scale :math:`\alpha`. May be
      traced (differentiable); a traced value <= 0 gives a meaningless value
      (:func:`jaxloss.checked` reports it).
    beta: the positive, finite negative-pair scale :math:`\beta`. May be
      traced, as ``alpha``.
    base: the similarity threshold :math:`\lambda` (finite). May be traced
      (differentiable); a traced NaN gives NaN.
    epsilon: the non-negative, finite mining margin :math:`\epsilon`. May be
      traced; the loss is piecewise constant in it (derivative 0); a traced
      negative value mines fewer pairs (:func:`jaxloss.checked` reports it).
    reduction: ``"mean"`` (default, over anchors), ``"sum"`` or ``"none"``.
    weights: optional per-anchor weights broadcastable to ``[..., B]``.
    where: optional boolean mask broadcastable to ``[..., B]``; a masked
      member is neither anchor, positive nor negative (padding).

  Returns:
    A scalar, or ``[..., B]`` (one value per anchor) for ``reduction="none"``;
    float32 for half inputs.

  Edges: as the reference implementation, an anchor with no mined positive
  or no mined negative has loss 0 but stays in the mean (the mean divides by
  the set size). Mining selects pairs and passes no gradient; self-pairs are
  excluded by index (the reference code drops similarities above
  ``1 - 1e-5``, which also drops exact duplicates).

  Matches: the authors' ``MultiSimilarityLoss`` (Wang et al., the
  ``research-ms-loss`` code): ``scale_pos = alpha``, ``scale_neg = beta``,
  ``thresh = base``, ``margin = epsilon``.

  References: Wang et al., "Multi-Similarity Loss with General Pair Weighting
  for Deep Metric Learning", CVPR 2019.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> e = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
    >>> print(f"{jl.multi_similarity(e, jnp.array([0, 0, 1, 1])):.4f}")
    0.6791
  """
  x, y, valid = _labelled_set(embeddings, labels, where)
  dtype = x.dtype
  alpha = _inputs.number("alpha", alpha, dtype, lambda a: a > 0, "a positive number")
  beta = _inputs.number("beta", beta, dtype, lambda b: b > 0, "a positive number")
  base = _inputs.number("base", base, dtype)
  epsilon = _inputs.number("epsilon", epsilon, dtype, lambda e: e >= 0, "a non-negative number")
  positive, negative = _label_pairs(y, valid)
  s = _cosines(x)
  hardest_positive = jnp.min(jnp.where(positive, s, jnp.inf), axis=-1, keepdims=True)
  hardest_negative = jnp.max(jnp.where(negative, s, -jnp.inf), axis=-1, keepdims=True)
  negative = negative & (s + epsilon > hardest_positive)
  positive = positive & (s - epsilon < hardest_negative)
  pulled = _custom.logsumexp(jnp.asarray(alpha * (base - s)), positive)
  pushed = _custom.logsumexp(jnp.asarray(beta * (s - base)), negative)
  mined = (pulled != -jnp.inf) & (pushed != -jnp.inf)  # -inf exactly where nothing is selected
  pull = jax.nn.softplus(pulled) / alpha  # log(1 + sum e^...) / alpha
  push = jax.nn.softplus(pushed) / beta
  loss = jnp.where(mined, pull + push, 0)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=valid)


# Triplets mined in the batch ---------------------------------------------------------------------

MINING = ("batch_all", "batch_hard", "semi_hard")


def _distances(x: jax.Array, p: float) -> jax.Array:
  """The ``[..., B, B]`` p-norm distances of a set ``[..., B, D]``; exactly 0 (gradient 0) between duplicates.

  ``p = 2`` takes the Gram form ``|a|^2 + |b|^2 - 2 a.b`` (one matrix product,
  no ``B x B x D`` array); squared distances below its resolution,
  ``4 eps (|a|^2 + |b|^2)``, are 0 with a zero gradient (rounding would
  otherwise give duplicates a noise distance with a huge gradient). Other
  ``p`` take :func:`jaxloss._custom.norm` of the ``[..., B, B, D]``
  differences (its minimum-norm 0 where they vanish).
  """
  columns = _columns(x, -2)
  if p != 2:
    return _custom.norm(x[..., :, None, :] - columns[..., None, :, :], p)
  squares = jnp.sum(x * x, axis=-1)
  total = squares[..., :, None] + _columns(squares)[..., None, :]
  squared = total - 2 * jnp.einsum("...id,...jd->...ij", x, columns)
  resolved = squared > 4 * float(jnp.finfo(x.dtype).eps) * total
  return _custom.sqrt(jnp.where(resolved, squared, 0))


def _search(sorted_rows: jax.Array, values: jax.Array, side: str) -> jax.Array:
  """``searchsorted`` of ``values`` ``[..., K]`` in each sorted row ``[..., N]`` (O((N + K) log) per row)."""
  search = lambda row, v: jnp.searchsorted(row, v, side=side, method="sort")

  def rows(sorted_rows, values):
    found = jax.vmap(search)(sorted_rows.reshape(-1, sorted_rows.shape[-1]), values.reshape(-1, values.shape[-1]))
    return found.reshape(values.shape).astype(jnp.int32)

  return _unsharded_types(rows, values)(sorted_rows, values)


def _unsharded_types(f, like: jax.Array):
  """``f``, run with the mesh axes automatic (XLA shards it) where ``like``'s type shards it over explicit axes.

  ``sort``'s derivative and ``searchsorted`` pair their operand with an
  unsharded ``iota`` (a ShardingTypeError under explicit axes); their result
  takes the sharding of ``like``.
  """
  if not _gather.sharded(like):
    return f
  return jax.sharding.auto_axes(f, out_sharding=jax.typeof(like).sharding)


@loss
def batch_triplet(
  embeddings: ArrayLike,
  labels: ArrayLike,
  *,
  margin: Numeric = 1.0,
  mining: Static[str] = "batch_all",
  p: Static[float] = 2.0,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Triplet loss over triplets mined inside the batch from its ``B x B`` distance matrix.

  .. math::
    \ell_{apn} = \max(0,\ d_{ap} - d_{an} + \text{margin}),
    \qquad d_{ij} = \lVert e_i - e_j \rVert_p

  for anchors :math:`a`, positives :math:`p` (same label, another member) and
  negatives :math:`n` (another label), mined by ``mining``:

  * ``"batch_all"``: every triplet; the mean is over the triplets with a
    positive loss (pytorch-metric-learning's ``AvgNonZeroReducer``), the
    per-anchor loss the sum over its triplets;
  * ``"batch_hard"`` (Hermans et al.): per anchor, its farthest positive and
    closest negative; the mean is over anchors with both;
  * ``"semi_hard"`` (Schroff et al., as ``tfa.losses.TripletSemiHardLoss``):
    per positive pair, the closest negative farther than the positive (the
    farthest negative if none is); the mean is over positive pairs, the
    per-anchor loss the sum over its pairs.

  Args:
    embeddings: floating ``[..., B, D]``; leading dimensions hold independent sets.
    labels: integer ``[..., B]``.
    margin: non-negative, finite margin. May be traced (differentiable); a
      traced negative or non-finite margin gives a meaningless value
      (:func:`jaxloss.checked` reports it).
    mining: ``"batch_all"`` (default), ``"batch_hard"`` or ``"semi_hard"``.
    p: the norm degree, ``p >= 1`` (finite). ``p = 2`` needs one ``B x B``
      matrix product; other ``p`` build the ``[..., B, B, D]`` differences.
    reduction: ``"mean"`` (default, as ``mining`` says), ``"sum"`` or ``"none"``.
    weights: optional per-anchor weights broadcastable to ``[..., B]`` (the
      ``"batch_all"`` and ``"semi_hard"`` means divide by the weighted count
      of triplets or pairs).
    where: optional boolean mask broadcastable to ``[..., B]``; a masked
      member is neither anchor, positive nor negative (padding).

  Returns:
    A scalar, or ``[..., B]`` (one value per anchor) for ``reduction="none"``;
    float32 for half inputs.

  Edges: duplicate embeddings have distance exactly 0 with gradient 0 (the
  minimum-norm subgradient; for ``p = 2`` distances below the Gram form's
  resolution, about ``1e-3 * ||e||`` in float32, count as duplicates); the
  hinge has derivative 0 at its kink; ties among the hardest positives or
  negatives share the gradient (the average, minimum-norm). An anchor without
  positives or negatives has loss 0 and leaves the mean. No ``B^3`` array:
  ``"batch_all"`` and ``"semi_hard"`` sort each anchor's negative distances
  and search them (``O(B^2 log B)``).

  References: Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for
  Person Re-Identification", 2017; Schroff, Kalenichenko and Philbin,
  "FaceNet", CVPR 2015.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> e = jnp.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [2.0, 0.5]])
    >>> print(jl.batch_triplet(e, jnp.array([0, 0, 1, 1]), mining="batch_hard", reduction="none"))
    [0.  0.  0.  0.]
    >>> print(f"{jl.batch_triplet(e, jnp.array([0, 0, 1, 1]), margin=2.0):.4f}")
    0.6602
  """
  _checks.option("mining", mining, mining in MINING, " or ".join(repr(m) for m in MINING))
  p = _inputs.number("p", p, ok=lambda p: p >= 1, expected="a number >= 1")  # static: selects the norm
  x, y, valid = _labelled_set(embeddings, labels, where)
  margin = _inputs.number("margin", margin, x.dtype, lambda m: m >= 0, "a non-negative number")
  positive, negative = _label_pairs(y, valid)
  d = _distances(x, p)
  if mining == "batch_hard":
    farthest = _custom.max(jnp.where(positive, d, -jnp.inf))
    closest = -_custom.max(jnp.where(negative, -d, -jnp.inf))
    # An anchor has a positive iff its farthest is not -inf (a distance is never -inf; NaN stays in), and a
    # negative likewise: no separate any() passes over the B x B masks (forward 4096x512 1.075x -> ~1.0x jnp).
    both = (farthest != -jnp.inf) & (closest != jnp.inf)
    loss = jax.nn.relu(jnp.where(both, farthest - closest, 0) + margin)
    return _reduce.reduce(jnp.where(both, loss, 0), reduction=reduction, weights=weights, where=valid & both)
  # Each anchor's negative distances, ascending (+inf past its negatives), searched for every positive, and
  # their prefix sums: the sum of any run of them is a difference of two prefix sums.
  candidates = jnp.where(negative, d, jnp.inf)
  ordered = _unsharded_types(lambda c: jnp.sort(c, axis=-1), candidates)(candidates)
  finite = jnp.where(jnp.isfinite(ordered), ordered, 0)
  prefix = jnp.concatenate([jnp.zeros_like(finite[..., :1]), jnp.cumsum(finite, axis=-1)], axis=-1)
  if mining == "batch_all":
    # Triplets (a, p, n) with a positive loss: d_an < d_ap + margin, the first `active` sorted negatives.
    threshold = jnp.where(positive, d, -jnp.inf) + margin
    active = jnp.where(positive, _search(ordered, threshold, "left"), 0)
    nearest = jnp.take_along_axis(prefix, active, axis=-1)  # sum of the active negatives' distances
    terms = jnp.where(positive, active.astype(x.dtype) * jnp.where(positive, threshold, 0) - nearest, 0)
    count = jnp.sum(active, axis=-1).astype(x.dtype)
  else:
    # semi_hard: the first negative farther than d_ap, else the farthest one; negatives tied with it share
    # the gradient (their mean, the minimum-norm choice), read as a run of the sorted distances.
    has_negative = jnp.any(negative, axis=-1)
    negatives = jnp.sum(negative, axis=-1, dtype=jnp.int32)[..., None]
    beyond = _search(ordered, jnp.where(positive, d, 0), "right")
    index = jnp.clip(jnp.where(beyond < negatives, beyond, negatives - 1), 0, d.shape[-1] - 1)
    value = jnp.take_along_axis(ordered, index, axis=-1)
    first, last = _search(ordered, value, "left"), _search(ordered, value, "right")
    run = jnp.take_along_axis(prefix, last, axis=-1) - jnp.take_along_axis(prefix, first, axis=-1)
    chosen = run / jnp.maximum(last - first, 1).astype(x.dtype)
    paired = positive & has_negative[..., None]
    terms = jnp.where(paired, jax.nn.relu(jnp.where(paired, d - chosen, 0) + margin), 0)
    count = jnp.sum(paired, axis=-1).astype(x.dtype)
  loss = jnp.sum(terms, axis=-1)
  return _reduce.reduce(loss, reduction=reduction, weights=weights, where=valid, count_weights=count)
