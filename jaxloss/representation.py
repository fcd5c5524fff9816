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

Each loss's core is a private function taking the similarity inputs
explicitly (the local rows, the columns they are scored against and the
offset of the local rows among them), so a sharded form can call it on a
shard's rows against gathered or passed-around columns.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
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
  """``x / ||x||`` over the last axis, the norm floored at ``finfo.eps`` (a zero embedding stays 0), as ntxent."""
  return x / optax.safe_norm(x, jnp.finfo(x.dtype).eps, axis=-1, keepdims=True)


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
  logits = jnp.einsum("...id,...jd->...ij", u, v) / temperature
  positive = jnp.diagonal(logits, axis1=-2, axis2=-1)  # both directions' targets, read once
  images = _clip_rows(logits, positive, mask, label_smoothing)
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
  target = _targets(logits.shape, row_offset)
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
  loss = _siglip_rows(_unit(u), _unit(v), 0, temperature, bias, mask)
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
  normaliser = _custom.logsumexp(similarity, others, axis=-1)
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
  unit_all, y_all, mask_all = unit, y, mask
  offset: jax.Array | int = 0
  if axis_name is not None:
    axis = y.ndim - 1
    unit_all, y_all = _gather.gather(unit, axis_name, axis), _gather.gather(y, axis_name, axis)
    mask_all = None if mask is None else _gather.gather(mask, axis_name, axis)
    offset = _gather.row_offset(y.shape[-1], axis_name)
  loss, count = _supcon_per_anchor(unit, unit_all, y, y_all, offset, temperature, mask, mask_all)
  valid = count > 0 if mask is None else mask & (count > 0)
  return _gather.reduce(loss, reduction=reduction, weights=weights, where=valid, axis_name=axis_name)
