"""Losses over sequences: connectionist temporal classification (CTC).

``logits`` are ``[..., T, K]`` (time steps, then classes: the class axis is
last), ``labels`` are ``[..., N]``; leading dimensions are batch, and the
per-example loss is one value per sequence, of shape ``[...]``, to which
``weights`` and ``where`` broadcast. Inputs are computed in float32 at least
(float16 and bfloat16 are promoted; float64 stays float64 when x64 is enabled).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _inputs, _lattice, _reduce
from jaxloss._api import Static, loss


@loss
def ctc(
  logits: ArrayLike,
  labels: ArrayLike,
  *,
  logit_lengths: ArrayLike,
  label_lengths: ArrayLike,
  blank: Static[int] = 0,
  zero_infinity: Static[bool] = False,
  reduction: Static[str] = "mean",
  weights: ArrayLike | None = None,
  where: ArrayLike | None = None,
) -> jax.Array:
  r"""Connectionist temporal classification loss: the negative log-likelihood of the labels.

  .. math::
    \ell_b = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_b)} \prod_{t < T_b}
      \operatorname{softmax}(z_{b,t})_{\pi_t}

  where :math:`\mathcal{B}` removes repeats, then blanks, from an alignment
  :math:`\pi` of length :math:`T_b` (the sequence's ``logit_lengths``), and
  :math:`y_b` is its first ``label_lengths`` labels.

  Args:
    logits: floating ``[..., T, K]``: unnormalised scores over ``K`` classes
      (blank included) for each of ``T`` time steps; a log-softmax is applied.
    labels: integer ``[..., N]``, right-padded label sequences; entries past
      ``label_lengths`` are ignored.
    logit_lengths: integer ``[...]``, the number of valid time steps of each
      sequence (``0 <= T_b <= T``).
    label_lengths: integer ``[...]``, the number of labels of each sequence
      (``0 <= L_b <= N``).
    blank: the blank class, in ``[0, K)``; labels must not use it.
    zero_infinity: give sequences with no alignment (too few time steps for
      their labels) a loss of 0 and a zero gradient instead of ``+inf``.
    reduction: ``"mean"`` (default, over sequences), ``"sum"`` or ``"none"``.
    weights: optional weights broadcastable to ``[...]``.
    where: optional boolean mask broadcastable to ``[...]``; masked sequences
      are ignored entirely (their inputs may hold anything, even NaN).

  Returns:
    A scalar, or ``[...]`` for ``reduction="none"``; float32 for half inputs.

  Per sequence, equal to ``torch.nn.functional.ctc_loss(log_softmax(logits),
  ..., reduction="none")`` with time-major inputs. ``reduction="mean"`` is the
  mean over sequences; torch's default ``"mean"`` divides each loss by its label
  length first: ``jnp.mean(ctc(..., reduction="none") /
  jnp.maximum(label_lengths, 1))``. A sequence with no alignment has loss
  ``+inf`` and gradient 0 (the loss is constant in the logits there; torch's
  gradient is the softmax), or 0 with ``zero_infinity``. The gradient is the
  exact posterior occupancy from the forward-backward recursions (a
  ``custom_jvp``), so reverse mode stores no per-step state, and forward mode
  (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) works. Unlike
  ``optax.losses.ctc_loss``, unreachable states are exactly -inf, not
  ``log_epsilon``. Reference: Graves et al., "Connectionist Temporal
  Classification", ICML 2006.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> logits = jnp.zeros((1, 3, 2))  # 3 steps, classes {blank, a}, uniform
    >>> labels = jnp.array([[1]])
    >>> # 6 of the 8 alignments of length 3 read "a": -log(6/8)
    >>> print(jl.ctc(logits, labels, logit_lengths=jnp.array([3]), label_lengths=jnp.array([1])))
    0.28768206
  """
  x = _checks.floating("logits", logits)
  y = _checks.integer("labels", labels)
  logit_lengths = _checks.integer("logit_lengths", logit_lengths)
  label_lengths = _checks.integer("label_lengths", label_lengths)
  if x.ndim < 2:
    raise ValueError(f"{_checks.name()}: `logits` must have shape [..., T, K] (rank >= 2), got logits.shape={x.shape}.")
  batch, (steps, classes) = x.shape[:-2], x.shape[-2:]
  if y.shape[:-1] != batch or y.ndim != x.ndim - 1:
    raise ValueError(
      f"{_checks.name()}: `labels` must have shape [..., N] with the batch dimensions of `logits` {batch}, got"
      f" labels.shape={y.shape} and logits.shape={x.shape}."
    )
  for name, lengths in (("logit_lengths", logit_lengths), ("label_lengths", label_lengths)):
    if lengths.shape != batch:
      raise ValueError(
        f"{_checks.name()}: `{name}` must have the batch shape of `logits` {batch}, got {name}.shape={lengths.shape}."
      )
  blank_ok = isinstance(blank, (int, np.integer)) and not isinstance(blank, bool) and 0 <= blank < classes
  _checks.option("blank", blank, blank_ok, f"an int in [0, {classes}) (the number of classes)")
  _checks.option("zero_infinity", zero_infinity, isinstance(zero_infinity, bool), "a bool")
  _reduce.check_reduction(reduction)

  dtype = _checks.compute_dtype(x)
  mask = _inputs.mask(where, batch, of="the per-sequence loss")
  n = y.shape[-1]
  size = math.prod(batch)
  # Flatten the batch; masked sequences become empty ones (no steps, no labels): loss 0, gradient 0.
  x = _inputs.zero_masked(mask, x.astype(dtype), axis=(-2, -1)).reshape(size, steps, classes)
  y = y.astype(jnp.int32).reshape(size, n)
  logit_lengths = logit_lengths.astype(jnp.int32).reshape(size)
  label_lengths = label_lengths.astype(jnp.int32).reshape(size)
  if mask is not None:
    flat_mask = mask.reshape(size)
    logit_lengths = jnp.where(flat_mask, logit_lengths, 0)
    label_lengths = jnp.where(flat_mask, label_lengths, 0)
  _checks.debug_no_nan(logits=x)
  for name, lengths, most in (("logit_lengths", logit_lengths, steps), ("label_lengths", label_lengths, n)):
    inside = (lengths >= 0) & (lengths <= most)
    message = f"{_checks.name()}: `{name}` must be in [0, {most}], found {{}}."
    _checks.debug_all(inside, message, lengths)
  used = jnp.arange(n, dtype=jnp.int32)[None, :] < label_lengths[:, None]
  valid_label = (y >= 0) & (y < classes) & (y != blank)
  message = (
    f"{_checks.name()}: `labels` must be class indices in [0, {classes}) other than the blank {blank}, found {{}}."
  )
  _checks.debug_all(valid_label | ~used, message, y)
  logit_lengths = jnp.clip(logit_lengths, 0, steps)
  label_lengths = jnp.clip(label_lengths, 0, n)
  y = jnp.clip(y, 0, classes - 1)

  nll = -_lattice.log_likelihood(*_lattice.emissions(x, y, blank), logit_lengths, label_lengths)
  if zero_infinity:
    nll = jnp.where(nll < jnp.inf, nll, 0)
  return _reduce.reduce(nll.reshape(batch), reduction=reduction, weights=weights, where=mask)
