"""From a model and a jaxloss loss to an optax training step.

Two builders:

* :func:`objective` turns ``apply_fn(params, inputs)`` (a Flax ``model.apply``,
  an Equinox-style call, any function) and a loss into
  ``objective(params, batch) -> loss`` (optionally with aux outputs);
* :func:`make_step` turns an objective and any optax optimizer into a jitted
  ``step(params, opt_state, batch) -> (params, opt_state, loss[, aux])`` that
  gives each kind of optax transformation what it needs: plain transformations
  and chains take the gradient, ``optax.contrib.reduce_on_plateau`` also the
  ``value``, line searches (``optax.lbfgs``, ``optax.scale_by_zoom_linesearch``,
  ``optax.scale_by_backtracking_linesearch``) also ``grad`` and ``value_fn``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

__all__ = ("make_step", "objective")

Batch = Mapping[str, Any] | tuple | list
Objective = Callable[[Any, Batch], Any]


def _unpack(batch: Batch) -> tuple[Any, Any, dict[str, Any]]:
  """``(inputs, targets, loss keyword arrays)`` from a mapping or a sequence batch."""
  if isinstance(batch, Mapping):
    missing = {"inputs", "targets"} - set(batch)
    if missing:
      raise ValueError(
        f"jaxloss.train: a mapping batch needs the keys 'inputs' and 'targets' (missing {sorted(missing)});"
        f" got keys {sorted(batch)}."
      )
    extra = {k: v for k, v in batch.items() if k not in ("inputs", "targets")}
    return batch["inputs"], batch["targets"], extra
  if isinstance(batch, (tuple, list)) and 2 <= len(batch) <= 4:
    inputs, targets, *rest = batch
    extra = dict(zip(("weights", "where"), rest, strict=False))
    return inputs, targets, extra
  raise TypeError(
    "jaxloss.train: `batch` must be a mapping with 'inputs' and 'targets' (other keys are passed to the loss,"
    f" e.g. 'weights', 'where', 'label_lengths') or a tuple (inputs, targets[, weights[, where]]); got {type(batch)}."
  )


def objective(
  apply_fn: Callable[[Any, Any], Any],
  loss: Callable[..., jax.Array],
  *,
  aux: bool = False,
  metrics: Mapping[str, Callable[[Any, Any], jax.Array]] | None = None,
  **loss_options: Any,
) -> Objective:
  """Build ``objective(params, batch)`` from a model and a loss.

  Args:
    apply_fn: ``apply_fn(params, inputs) -> predictions``.
    loss: a jaxloss loss (or any ``loss(predictions, targets, **keywords)``).
    aux: if True the objective returns ``(loss, aux)`` with ``aux`` a dict holding
      ``"predictions"``, ``"per_example"`` (the loss with ``reduction="none"``)
      and one entry per metric.
    metrics: ``{name: fn(predictions, targets)}``, computed into ``aux`` (needs ``aux=True``).
    **loss_options: static options of the loss (``delta=...``, ``reduction=...``).

  Returns:
    ``objective(params, batch)``. A batch is a mapping with ``"inputs"`` and
    ``"targets"`` whose other entries are passed to the loss as keyword arrays
    (``weights``, ``where``, ``logit_lengths``, ...), or a tuple
    ``(inputs, targets[, weights[, where]])``. The returned function has an
    attribute ``has_aux`` that :func:`make_step` reads.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> f = jl.train.objective(lambda w, x: x @ w, jl.huber, delta=0.5)
    >>> print(f(jnp.ones(2), (jnp.eye(2), jnp.array([1.0, 3.0]))))
    0.4375
  """
  if metrics and not aux:
    raise ValueError("jaxloss.train.objective: `metrics` are returned as aux outputs; pass aux=True.")

  def fn(params, batch):
    inputs, targets, extra = _unpack(batch)
    predictions = apply_fn(params, inputs)
    value = loss(predictions, targets, **extra, **loss_options)
    if not aux:
      return value
    unreduced = {**loss_options, "reduction": "none"}
    outputs = {"predictions": predictions, "per_example": loss(predictions, targets, **extra, **unreduced)}
    for name, metric in (metrics or {}).items():
      outputs[name] = metric(predictions, targets)
    return value, outputs

  fn.has_aux = aux
  return fn


def _has_line_search(opt_state) -> tuple[bool, bool]:
  """Whether the optimizer state holds a line search, and whether it stores the gradient."""
  try:
    value = optax.tree.get(opt_state, "value", None)
    grad = optax.tree.get(opt_state, "grad", None)
  except KeyError:  # several line searches in one state: no reuse, but pass what they need
    return True, False
  return value is not None, grad is not None


def make_step(
  objective: Objective,
  optimizer: optax.GradientTransformation | optax.MultiSteps,
  *,
  has_aux: bool | None = None,
  full_batch: bool = False,
  donate: bool = False,
  jit: bool = True,
) -> Callable[..., tuple]:
  """Build a training step for any optax optimizer.

  Args:
    objective: ``objective(params, batch) -> loss`` or ``-> (loss, aux)``, e.g. from :func:`objective`.
    optimizer: any ``optax.GradientTransformation`` (plain, ``optax.chain``,
      ``optax.contrib.reduce_on_plateau``, ``optax.lbfgs``, line searches) or ``optax.MultiSteps``.
    has_aux: whether ``objective`` returns ``(loss, aux)``; by default read from
      ``objective.has_aux`` (set by :func:`objective`), else False.
    full_batch: declare that every call passes the same batch (full-batch
      optimisation, the usual way to run L-BFGS). The step then reuses the value
      and gradient the line search already computed at the accepted point
      (``optax.value_and_grad_from_state``), saving one evaluation per step.
      Leave it False with minibatches: the stored values belong to the previous batch.
    donate: donate ``params`` and ``opt_state`` to the jitted step (their buffers are
      reused for the outputs; do not use the passed-in values afterwards).
    jit: compile the step with ``jax.jit`` (default).

  Returns:
    ``step(params, opt_state, batch) -> (params, opt_state, loss)``, or
    ``(params, opt_state, loss, aux)`` with aux. ``loss`` is the objective at
    the incoming ``params``. Initialise the state with ``optimizer.init(params)``.

  Every optimizer receives ``value=loss`` (what ``reduce_on_plateau`` needs;
  transformations that do not take it ignore it). When the state holds a line
  search, the step also passes ``grad`` and ``value_fn`` (the objective on this
  batch as a function of the parameters).

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import jaxloss as jl
    >>> x = jnp.linspace(-1, 1, 32)[:, None]
    >>> batch = {"inputs": x, "targets": 3 * x[:, 0]}
    >>> f = jl.train.objective(lambda w, x: x @ w, jl.mse)
    >>> opt = optax.lbfgs()
    >>> step = jl.train.make_step(f, opt, full_batch=True)
    >>> w = jnp.zeros(1)
    >>> state = opt.init(w)
    >>> for _ in range(3):
    ...   w, state, loss = step(w, state, batch)
    >>> print(round(float(w[0]), 4))
    3.0
  """
  if has_aux is None:
    has_aux = bool(getattr(objective, "has_aux", False))
  if isinstance(optimizer, optax.MultiSteps):
    tx = optimizer  # forwards extra arguments to the wrapped optimizer itself
  elif isinstance(optimizer, optax.GradientTransformation):
    tx = optax.with_extra_args_support(optimizer)
  else:
    raise TypeError(
      f"jaxloss.train.make_step: `optimizer` must be an optax.GradientTransformation or optax.MultiSteps,"
      f" got {type(optimizer)}."
    )

  def step(params, opt_state, batch):
    def value_fn(p):
      out = objective(p, batch)
      return out[0] if has_aux else out

    line_search, stores_grad = _has_line_search(opt_state)
    aux = None
    if has_aux:
      (value, aux), grad = jax.value_and_grad(objective, has_aux=True)(params, batch)
    elif line_search and stores_grad and full_batch:
      value, grad = optax.value_and_grad_from_state(value_fn)(params, state=opt_state)
    else:
      value, grad = jax.value_and_grad(value_fn)(params)
    extra: dict[str, Any] = {"value": value}
    if line_search:
      extra.update(grad=grad, value_fn=value_fn)
    updates, opt_state = tx.update(grad, opt_state, params, **extra)
    params = optax.apply_updates(params, updates)
    return (params, opt_state, value, aux) if has_aux else (params, opt_state, value)

  if jit:
    step = jax.jit(step, donate_argnums=(0, 1) if donate else ())
  return step
