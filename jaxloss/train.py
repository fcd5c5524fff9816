"""From a model and a jaxloss loss to an optax training step.

Two builders, one shape for every model library:

* :func:`objective` turns a model and a loss into
  ``objective(params_or_model, batch) -> loss`` (optionally with aux outputs). It
  routes the batch (``"inputs"`` to the model, ``"targets"`` and the loss's
  keywords to the loss, ``model_keys`` to the model), lets the model return
  several loss inputs (``unpack=True``) and takes loss options that are
  constants, arrays, or :func:`learned` from the parameters.
* :func:`make_step` turns an objective and any optax optimizer into a jitted
  ``step(params_or_model, opt_state, batch) -> (params_or_model, opt_state, loss[, aux])``.
  ``params_or_model`` is a pytree of arrays, an Equinox module, a Flax NNX
  module or a Flax Linen ``variables`` dict; only inexact (floating or complex)
  arrays are differentiated and updated: integers, bools, PRNG keys, functions
  and Python numbers are carried along untouched, and never reach ``jax.grad``.
  The step gives each kind of optax transformation what it needs: plain
  transformations and chains take the gradient, ``optax.contrib.reduce_on_plateau``
  also the ``value``, line searches (``optax.lbfgs``, zoom, backtracking) also
  ``grad`` and ``value_fn``. With ``checked=True`` jaxloss's runtime checks run
  inside the jitted step.

Neither Flax nor Equinox is imported here: an NNX module is recognised only when
``flax.nnx`` is already imported, and Equinox modules are pytrees like any other.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import checkify

from jaxloss import _api

__all__ = ("Objective", "Step", "learned", "make_step", "objective")

Batch = Mapping[str, Any] | tuple | list
_RESERVED = ("inputs", "targets")
_MISSING = object()


@dataclasses.dataclass(frozen=True)
class _Learned:
  fn: Callable[[Any], Any]


def learned(fn: Callable[[Any], Any]) -> Any:
  """A loss option computed from the parameters being trained (a learned temperature, margin, scale).

  ``jl.train.objective(model, loss, temperature=jl.train.learned(fn))`` calls
  ``fn(params_or_model)`` inside the differentiated objective, so the option is
  traced and its parameters get their gradient like every other parameter.

  Args:
    fn: ``fn(params_or_model) -> option``, e.g. ``lambda p: jnp.exp(p["log_temperature"])``
      for a dict, ``lambda m: jnp.exp(m.log_temperature[...])`` for an NNX module.

  Returns:
    A marker for :func:`objective`'s ``**loss_options``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import jaxloss as jl
    >>> params = {"w": jnp.ones(1), "log_delta": jnp.log(0.5)}
    >>> delta = jl.train.learned(lambda p: jnp.exp(p["log_delta"]))
    >>> f = jl.train.objective(lambda p, x: x @ p["w"], jl.huber, delta=delta)
    >>> batch = {"inputs": jnp.array([[1.0], [2.0]]), "targets": jnp.array([0.0, 0.0])}
    >>> print(round(float(jax.grad(f)(params, batch)["log_delta"]), 4))  # d/d log_delta of delta (|e| - delta / 2)
    0.5
  """
  return _Learned(fn)


def _name(fn: Any) -> str:
  """``jaxloss.huber`` for a jaxloss loss, the qualified name of anything else, for messages."""
  module = getattr(fn, "__module__", "") or ""
  name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
  if module.startswith("jaxloss.") and not module.startswith("jaxloss.compat"):
    return f"jaxloss.{name}"
  return f"{module}.{name}" if module and module != "builtins" else name


@dataclasses.dataclass(frozen=True)
class _Signature:
  """What a loss accepts: keyword names (None: any), and its positional array count (None: unknown)."""

  keywords: frozenset[str] | None
  required: int | None  # positional parameters without a default
  positional: int | None  # positional parameters in all


def _signature(fn: Callable[..., Any]) -> _Signature:
  try:
    parameters = list(inspect.signature(fn).parameters.values())
  except (TypeError, ValueError):
    return _Signature(None, None, None)
  kinds = inspect.Parameter
  positional = [p for p in parameters if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
  has_varargs = any(p.kind is kinds.VAR_POSITIONAL for p in parameters)
  keywords: frozenset[str] | None = frozenset(
    p.name
    for p in parameters
    if p.kind is kinds.KEYWORD_ONLY or (p.kind is kinds.POSITIONAL_OR_KEYWORD and p.default is not p.empty)
  )
  if any(p.kind is kinds.VAR_KEYWORD for p in parameters):
    keywords = None
  required = sum(p.default is p.empty for p in positional)
  return _Signature(keywords, required, None if has_varargs else len(positional))


def _linen_apply(apply_fn: Any) -> bool:
  """Whether ``apply_fn`` is a Flax Linen module's ``apply`` (bound, possibly in ``functools.partial``)."""
  linen = sys.modules.get("flax.linen")
  while isinstance(apply_fn, functools.partial):
    apply_fn = apply_fn.func
  return (
    linen is not None
    and getattr(apply_fn, "__name__", None) == "apply"
    and isinstance(getattr(apply_fn, "__self__", None), linen.Module)
  )


class Objective:
  """``objective(params_or_model, batch)``: a model and a loss; built by :func:`objective`.

  Calling it returns the loss (or ``(loss, aux)`` when ``has_aux``); :func:`make_step`
  also reads the updated mutable collections of a Flax Linen model from it
  (:meth:`evaluate`).

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> f = jl.train.objective(lambda w, x: x @ w, jl.mae, aux=True)
    >>> value, aux = f(jnp.ones(2), {"inputs": jnp.eye(2), "targets": jnp.array([1.0, 3.0])})
    >>> print(f.has_aux, value, aux["per_example"])
    True 1.0 [0. 2.]
  """

  def __init__(
    self,
    apply_fn: Callable[..., Any] | None,
    loss: Callable[..., jax.Array],
    *,
    model_keys: Iterable[str],
    loss_keys: Iterable[str] | None,
    unpack: bool,
    mutable: Iterable[str] | None,
    aux: bool,
    metrics: Mapping[str, Callable[..., jax.Array]] | None,
    loss_options: Mapping[str, Any],
  ):
    self.apply_fn = apply_fn
    self.loss = loss
    self.model_keys = _keys("model_keys", model_keys)
    self.loss_keys = None if loss_keys is None else _keys("loss_keys", loss_keys)
    self.unpack = unpack
    self.linen = _linen_apply(apply_fn) or mutable is not None
    self.mutable = () if mutable is None else _keys("mutable", mutable)
    self.has_aux = aux
    self.metrics = dict(metrics or {})
    self.loss_options = dict(loss_options)
    self._signature = _signature(loss)
    self._loss_name = _name(loss)
    if self.metrics and not aux:
      raise ValueError("jaxloss.train.objective: `metrics` are returned as aux outputs; pass aux=True.")
    if apply_fn is not None and not callable(apply_fn):
      raise TypeError(f"jaxloss.train.objective: `apply_fn` must be callable or None, got {type(apply_fn)}.")
    if mutable is not None and not self.linen:
      raise ValueError("jaxloss.train.objective: `mutable` names Flax Linen collections; pass `model.apply`.")
    if self.linen and apply_fn is None:
      raise ValueError("jaxloss.train.objective: a Flax Linen model needs `apply_fn=model.apply`.")
    for where, keys in (("model_keys", self.model_keys), ("loss_keys", self.loss_keys or ())):
      reserved = sorted(set(keys) & set(_RESERVED))
      if reserved:
        raise ValueError(
          f"jaxloss.train.objective: {reserved} cannot be in `{where}`: 'inputs' always go to the model"
          " and 'targets' to the loss."
        )
    both = sorted(set(self.model_keys) & set(self.loss_keys or ()))
    if both:
      raise ValueError(f"jaxloss.train.objective: {both} are in both `model_keys` and `loss_keys`.")
    accepted = self._signature.keywords
    if self.loss_keys is not None and accepted is not None:
      unknown = sorted(set(self.loss_keys) - accepted)
      if unknown:
        raise ValueError(
          f"jaxloss.train.objective: {self._loss_name} takes no keyword {unknown} (`loss_keys`);"
          f" it takes {sorted(accepted)}."
        )
    if accepted is not None:
      unknown = sorted(set(self.loss_options) - accepted)
      if unknown:
        raise TypeError(
          f"jaxloss.train.objective: {self._loss_name} has no option {unknown}; it takes {sorted(accepted)}."
        )

  # -- the batch --------------------------------------------------------------------------------------

  def _route(self, batch: Batch) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """``(inputs, targets or _MISSING, model keywords, loss keywords)`` of a batch."""
    if isinstance(batch, Mapping):
      if "inputs" not in batch:
        raise ValueError(f"jaxloss.train: a mapping batch needs the key 'inputs'; got keys {sorted(batch)}.")
      model_kw, loss_kw, stray = {}, {}, []
      accepted = self._signature.keywords
      for key, value in batch.items():
        if key in _RESERVED:
          continue
        if key in self.model_keys:
          model_kw[key] = value
        elif (key in self.loss_keys) if self.loss_keys is not None else (accepted is None or key in accepted):
          loss_kw[key] = value
        else:
          stray.append(key)
      if stray:
        takes = (
          "its `loss_keys` " + repr(sorted(self.loss_keys))
          if self.loss_keys is not None
          else ("the keywords " + repr(sorted(accepted or ())))
        )
        raise ValueError(
          f"jaxloss.train: batch key(s) {sorted(stray)} go to neither the model (model_keys={sorted(self.model_keys)})"
          f" nor the loss ({self._loss_name} takes {takes}). Pass model_keys=(..., {stray[0]!r}) to give"
          " it to the model as a keyword argument, or remove it from the batch."
        )
      missing = sorted(set(self.model_keys) - set(batch))
      if missing:
        raise ValueError(f"jaxloss.train: the batch has no {missing}, named in `model_keys`; got keys {sorted(batch)}.")
      twice = sorted(set(loss_kw) & set(self.loss_options))
      if twice:
        raise ValueError(f"jaxloss.train: {twice} given both in the batch and as loss options of the objective.")
      return batch["inputs"], batch.get("targets", _MISSING), model_kw, loss_kw
    if isinstance(batch, (tuple, list)) and 2 <= len(batch) <= 4:
      inputs, targets, *rest = batch
      return inputs, targets, {}, dict(zip(("weights", "where"), rest, strict=False))
    raise TypeError(
      "jaxloss.train: `batch` must be a mapping with 'inputs' (and 'targets' when the loss takes them; other keys go"
      " to the loss, e.g. 'weights', 'where', 'label_lengths', or to the model with `model_keys`) or a tuple"
      f" (inputs, targets[, weights[, where]]); got {type(batch)}."
    )

  # -- evaluation ---------------------------------------------------------------------------------------

  def _outputs(self, model: Any, inputs: Any, model_kw: dict[str, Any]) -> tuple[Any, Any]:
    """The model's outputs and, for a Linen model with mutable collections, their new values."""
    if self.linen:
      assert self.apply_fn is not None
      if self.mutable:
        return self.apply_fn(model, inputs, mutable=list(self.mutable), **model_kw)
      return self.apply_fn(model, inputs, **model_kw), None
    if self.apply_fn is None:
      return model(inputs, **model_kw), None
    return self.apply_fn(model, inputs, **model_kw), None

  def _arguments(self, outputs: Any, targets: Any, batch: Batch) -> tuple[Any, ...]:
    if self.unpack:
      if not isinstance(outputs, (tuple, list)):
        raise TypeError(
          f"jaxloss.train: with unpack=True the model must return a tuple of loss inputs, got {type(outputs)}."
        )
      args = tuple(outputs)
    else:
      args = (outputs,)
    required, positional = self._signature.required, self._signature.positional
    if targets is _MISSING:
      if required is not None and len(args) < required:
        keys = sorted(batch) if isinstance(batch, Mapping) else []
        raise ValueError(
          f"jaxloss.train: {self._loss_name} needs the batch key 'targets' (it takes {required} positional arrays,"
          f" the model gave {len(args)}); got keys {keys}."
        )
      return args
    if positional is not None and len(args) >= positional:
      raise ValueError(
        f"jaxloss.train: {self._loss_name} takes no targets after the model's {len(args)} output(s),"
        " but the batch has 'targets'."
      )
    return (*args, targets)

  def evaluate(self, model: Any, batch: Batch) -> tuple[jax.Array, Any, Any]:
    """``(loss, aux or None, updated Linen collections or None)`` at ``model`` on ``batch``."""
    inputs, targets, model_kw, loss_kw = self._route(batch)
    outputs, mutated = self._outputs(model, inputs, model_kw)
    args = self._arguments(outputs, targets, batch)
    options = {k: v.fn(model) if isinstance(v, _Learned) else v for k, v in self.loss_options.items()}
    value = self.loss(*args, **loss_kw, **options)
    if not self.has_aux:
      return value, None, mutated
    aux = {"predictions": outputs, "per_example": self.loss(*args, **loss_kw, **{**options, "reduction": "none"})}
    for name, metric in self.metrics.items():
      aux[name] = metric(outputs) if targets is _MISSING else metric(outputs, targets)
    return value, aux, mutated

  def __call__(self, params_or_model: Any, batch: Batch) -> Any:
    value, aux, _ = self.evaluate(params_or_model, batch)
    return (value, aux) if self.has_aux else value


def _keys(what: str, keys: Iterable[str]) -> tuple[str, ...]:
  if isinstance(keys, str):
    return (keys,)
  keys = tuple(keys)
  if not all(isinstance(k, str) for k in keys):
    raise TypeError(f"jaxloss.train.objective: `{what}` must be strings, got {keys!r}.")
  return keys


def objective(
  apply_fn: Callable[..., Any] | None,
  loss: Callable[..., jax.Array],
  *,
  model_keys: Iterable[str] = (),
  loss_keys: Iterable[str] | None = None,
  unpack: bool = False,
  mutable: Iterable[str] | None = None,
  aux: bool = False,
  metrics: Mapping[str, Callable[..., jax.Array]] | None = None,
  **loss_options: Any,
) -> Objective:
  """Build ``objective(params_or_model, batch)`` from a model and a loss.

  Args:
    apply_fn: ``apply_fn(params_or_model, inputs, **model_keywords) -> outputs``: a
      function of a parameter pytree, a Flax Linen ``model.apply`` (recognised:
      only its ``"params"`` collection is trained), ``lambda m, x: jax.vmap(m)(x)``
      for a per-example Equinox model; or ``None``: the model is callable and is
      called as ``model(inputs, **model_keywords)`` (an NNX or batched Equinox module).
    loss: a jaxloss loss (or any ``loss(outputs..., targets, **keywords)``).
    model_keys: batch keys given to the model as keyword arguments (a dropout key,
      an attention mask, Linen's ``rngs``).
    loss_keys: batch keys given to the loss as keyword arguments. By default every
      other key that the loss's signature accepts (``weights``, ``where``,
      ``logit_lengths``, a traced option such as ``label_smoothing`` on a schedule).
      A batch key that neither takes is a ``ValueError`` naming it.
    unpack: the model returns a tuple of the loss's leading arrays, which come
      before the targets: ``(hidden, weight)`` for :func:`jaxloss.linear_cross_entropy`,
      ``(x1, x2)`` for :func:`jaxloss.contrastive`, two embeddings for a CLIP-style loss.
    mutable: Flax Linen collections the model updates (``("batch_stats",)``): passed
      as ``apply(..., mutable=[...])``, and :func:`make_step` writes their new values back.
    aux: if True the objective returns ``(loss, aux)`` with ``aux`` a dict holding
      ``"predictions"`` (the model's outputs), ``"per_example"`` (the loss with
      ``reduction="none"``) and one entry per metric.
    metrics: ``{name: fn(outputs, targets)}``, computed into ``aux`` (needs ``aux=True``).
    **loss_options: options of the loss (``delta=0.5``, ``reduction="sum"``); a
      numeric option may be an array (traced) or :func:`learned` from the parameters.

  Returns:
    An :class:`Objective`: ``objective(params_or_model, batch)``. A batch is a
    mapping with ``"inputs"`` (any pytree: the model receives it whole), usually
    ``"targets"`` (left out for a loss without targets), and other keys routed as
    above; or a tuple ``(inputs, targets[, weights[, where]])``.

  Example:
    >>> import jax.numpy as jnp
    >>> import jaxloss as jl
    >>> f = jl.train.objective(lambda w, x: x @ w, jl.huber, delta=0.5)
    >>> print(f(jnp.ones(2), (jnp.eye(2), jnp.array([1.0, 3.0]))))
    0.4375
  """
  return Objective(
    apply_fn,
    loss,
    model_keys=model_keys,
    loss_keys=loss_keys,
    unpack=unpack,
    mutable=mutable,
    aux=aux,
    metrics=metrics,
    loss_options=loss_options,
  )


# -- what is trained, and what is carried ------------------------------------------------------------------


def _inexact(x: Any) -> bool:
  """A JAX or NumPy array of a floating or complex dtype (what ``eqx.is_inexact_array`` trains)."""
  return isinstance(x, (jax.Array, np.ndarray)) and jnp.issubdtype(x.dtype, jnp.inexact)


def _is_array(x: Any) -> bool:
  return isinstance(x, (jax.Array, np.ndarray))


class _Parts(Protocol):
  """How one kind of model is cut into what the optimizer trains, what the step carries, and what is static.

  ``trainable`` and ``rest`` are pytrees of arrays (traced by the jitted step);
  ``static`` and the parts object itself are hashable, compared by value (jit cache keys).
  """

  stateful: bool  # the forward pass may change ``rest`` (rng counters, batch statistics)

  def split(self, model: Any) -> tuple[Any, Any, Any]: ...
  def merge(self, trainable: Any, rest: Any, static: Any) -> Any: ...
  def after(self, model: Any, rest: Any, mutated: Any) -> Any: ...
  def rebuild(self, model: Any, trainable: Any, rest: Any, static: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class _Tree:
  """A pytree: plain parameters, an Equinox module, or anything whose leaves are arrays and Python objects.

  The inexact arrays are trained (the optimizer sees the same tree with ``None``
  elsewhere, as ``eqx.filter(model, eqx.is_inexact_array)``); other arrays are
  carried; other leaves (functions, Python numbers, strings) are static.
  """

  train: bool = True
  stateful = False  # a class attribute (no annotation): not a field

  def split(self, model: Any) -> tuple[Any, Any, Any]:
    leaves, treedef = jax.tree.flatten(model)
    kinds = tuple("t" if self.train and _inexact(x) else "a" if _is_array(x) else "s" for x in leaves)
    trainable = jax.tree.unflatten(treedef, [x if k == "t" else None for x, k in zip(leaves, kinds, strict=True)])
    rest = [x for x, k in zip(leaves, kinds, strict=True) if k == "a"]
    static = tuple(x for x, k in zip(leaves, kinds, strict=True) if k == "s")
    try:
      hash(static)
    except TypeError as e:
      raise TypeError(
        f"jaxloss.train: the model's non-array leaves must be hashable (they are fixed at compile time): {e}."
      ) from None
    return trainable, rest, (treedef, kinds, static)

  def merge(self, trainable: Any, rest: Any, static: Any) -> Any:
    treedef, kinds, statics = static
    sources = {"t": iter(jax.tree.leaves(trainable)), "a": iter(rest), "s": iter(statics)}
    return jax.tree.unflatten(treedef, [next(sources[k]) for k in kinds])

  def after(self, model: Any, rest: Any, mutated: Any) -> Any:
    return rest

  def rebuild(self, model: Any, trainable: Any, rest: Any, static: Any) -> Any:
    return self.merge(trainable, rest, static)


@dataclasses.dataclass(frozen=True)
class _Linen:
  """Flax Linen ``variables``: the ``"params"`` collection is trained, the others are carried (and updated)."""

  params: _Tree = _Tree()
  stateful = True

  def split(self, model: Any) -> tuple[Any, Any, Any]:
    if not isinstance(model, Mapping) or "params" not in model:
      raise TypeError(
        "jaxloss.train: a Flax Linen objective trains `variables` (a mapping with a 'params' collection, from"
        f" model.init); got {type(model)}."
      )
    trainable, rest, static = self.params.split(model["params"])
    others = {k: v for k, v in model.items() if k != "params"}
    return trainable, (rest, others), static

  def merge(self, trainable: Any, rest: Any, static: Any) -> Any:
    params_rest, others = rest
    return {"params": self.params.merge(trainable, params_rest, static), **others}

  def after(self, model: Any, rest: Any, mutated: Any) -> Any:
    params_rest, others = rest
    return (params_rest, {**others, **(mutated or {})})

  def rebuild(self, model: Any, trainable: Any, rest: Any, static: Any) -> Any:
    return self.merge(trainable, rest, static)


@dataclasses.dataclass(frozen=True)
class _Nnx:
  """A Flax NNX module: its inexact ``nnx.Param`` variables are trained, all other state is carried and updated.

  The module is split outside the jitted step and merged inside the
  differentiated function (fresh variables at that trace level, so dropout may
  advance its rng counter); the state after the forward pass (rng counters,
  batch statistics) is returned and written back into the module in place.
  """

  nnx: Any  # the flax.nnx module, found in sys.modules
  stateful = True

  @property
  def trained(self) -> Any:
    return self.nnx.All(self.nnx.Param, lambda path, variable: _inexact(variable.get_value()))

  def split(self, model: Any) -> tuple[Any, Any, Any]:
    graphdef, trainable, rest = self.nnx.split(model, self.trained, ...)
    return trainable, rest, graphdef

  def merge(self, trainable: Any, rest: Any, static: Any) -> Any:
    return self.nnx.merge(static, trainable, rest, copy=True)

  def after(self, model: Any, rest: Any, mutated: Any) -> Any:
    return self.nnx.state(model, self.nnx.Not(self.trained))

  def rebuild(self, model: Any, trainable: Any, rest: Any, static: Any) -> Any:
    self.nnx.update(model, trainable, rest)
    return model


def _parts(model: Any, objective: Any) -> _Parts:
  if isinstance(objective, Objective) and objective.linen:
    return _Linen()
  nnx = sys.modules.get("flax.nnx")
  if nnx is not None and isinstance(model, nnx.Module):
    return _Nnx(nnx)
  return _Tree()


def _evaluate(objective: Any, has_aux: bool) -> Callable[[Any, Batch], tuple[jax.Array, Any, Any]]:
  """``(value, aux, mutated)`` of any objective: an :class:`Objective` or a plain ``objective(params, batch)``."""
  if isinstance(objective, Objective):
    return objective.evaluate

  def evaluate(model: Any, batch: Batch) -> tuple[jax.Array, Any, Any]:
    out = objective(model, batch)
    return (out[0], out[1], None) if has_aux else (out, None, None)

  return evaluate


def _has_line_search(opt_state: Any) -> tuple[bool, bool]:
  """Whether the optimizer state holds a line search, and whether it stores the gradient."""
  try:
    value = optax.tree.get(opt_state, "value", None)
    grad = optax.tree.get(opt_state, "grad", None)
  except KeyError:  # several line searches in one state: no reuse, but pass what they need
    return True, False
  return value is not None, grad is not None


class Step:
  """``step(params_or_model, opt_state, batch) -> (params_or_model, opt_state, loss[, aux])``, from :func:`make_step`.

  ``step.init(params_or_model)`` is the optimizer's state for what the step
  trains (``optimizer.init(params)`` for a pytree of floating arrays,
  ``optimizer.init(nnx.state(model, nnx.Param))`` for an NNX module,
  ``optimizer.init(eqx.filter(model, eqx.is_inexact_array))`` for an Equinox one,
  ``optimizer.init(variables["params"])`` for Linen).

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import jaxloss as jl
    >>> params = {"w": jnp.zeros(2), "calls": jnp.array(0)}  # an integer leaf: carried, not trained
    >>> step = jl.train.make_step(jl.train.objective(lambda p, x: x @ p["w"], jl.mse), optax.sgd(0.5))
    >>> opt_state = step.init(params)
    >>> params, opt_state, loss = step(params, opt_state, (jnp.eye(2), jnp.array([1.0, 2.0])))
    >>> print(params["w"], params["calls"], loss)
    [0.5 1. ] 0 2.5
  """

  def __init__(
    self,
    objective: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    *,
    has_aux: bool,
    full_batch: bool,
    donate: bool,
    jit: bool,
    checked: bool,
    errors: frozenset[checkify.ErrorCategory],
  ):
    self.objective = objective
    self.optimizer = optimizer
    self.has_aux = has_aux
    self.checked = checked
    if isinstance(optimizer, optax.MultiSteps):
      tx = optimizer  # forwards extra arguments to the wrapped optimizer itself
    elif isinstance(optimizer, optax.GradientTransformation):
      tx = optax.with_extra_args_support(optimizer)
    else:
      raise TypeError(
        f"jaxloss.train.make_step: `optimizer` must be an optax.GradientTransformation or optax.MultiSteps,"
        f" got {type(optimizer)}."
      )
    evaluate = _evaluate(objective, has_aux)

    def core(trainable, rest, opt_state, batch, parts, static):
      def forward(t):
        model = parts.merge(t, rest, static)
        value, aux, mutated = evaluate(model, batch)
        return value, (aux, parts.after(model, rest, mutated))

      def value_fn(t):
        return forward(t)[0]

      line_search, stores_grad = _has_line_search(opt_state)
      if line_search and stores_grad and full_batch and not has_aux and not parts.stateful:
        value, grad = optax.value_and_grad_from_state(value_fn)(trainable, state=opt_state)
        aux, new_rest = None, rest
      else:
        (value, (aux, new_rest)), grad = jax.value_and_grad(forward, has_aux=True)(trainable)
      extra: dict[str, Any] = {"value": value}
      if line_search:
        extra.update(grad=grad, value_fn=value_fn)
      updates, opt_state = tx.update(grad, opt_state, trainable, **extra)
      return optax.apply_updates(trainable, updates), new_rest, opt_state, value, aux

    def run(trainable, rest, opt_state, batch, parts, static):
      if not checked:
        return core(trainable, rest, opt_state, batch, parts, static)
      token = _api.CHECKING.set(True)  # the losses traced from here on stage their runtime checks
      try:
        body = functools.partial(core, parts=parts, static=static)
        return checkify.checkify(body, errors=errors)(trainable, rest, opt_state, batch)
      finally:
        _api.CHECKING.reset(token)

    self._run = jax.jit(run, static_argnums=(4, 5), donate_argnums=(0, 1, 2) if donate else ()) if jit else run

  def init(self, params_or_model: Any) -> optax.OptState:
    """The optimizer's initial state for what this step trains in ``params_or_model``."""
    trainable, _, _ = _parts(params_or_model, self.objective).split(params_or_model)
    return self.optimizer.init(trainable)

  def __call__(self, params_or_model: Any, opt_state: optax.OptState, batch: Batch) -> tuple[Any, ...]:
    parts = _parts(params_or_model, self.objective)
    trainable, rest, static = parts.split(params_or_model)
    out = self._run(trainable, rest, opt_state, batch, parts, static)
    if self.checked:
      error, out = out
      error.throw()  # raises checkify.JaxRuntimeError naming the loss, the argument and the value
    trainable, rest, opt_state, value, aux = out
    model = parts.rebuild(params_or_model, trainable, rest, static)
    return (model, opt_state, value, aux) if self.has_aux else (model, opt_state, value)


def make_step(
  objective: Callable[..., Any],
  optimizer: optax.GradientTransformation,
  *,
  has_aux: bool | None = None,
  full_batch: bool = False,
  donate: bool = False,
  jit: bool = True,
  checked: bool = False,
  errors: frozenset[checkify.ErrorCategory] = checkify.user_checks,
) -> Step:
  """Build a training step for any optax optimizer and any kind of model.

  Args:
    objective: an :class:`Objective` (from :func:`objective`), or any
      ``objective(params_or_model, batch) -> loss`` or ``-> (loss, aux)``.
    optimizer: any ``optax.GradientTransformation`` (plain, ``optax.chain``,
      ``optax.contrib.reduce_on_plateau``, ``optax.lbfgs``, line searches) or ``optax.MultiSteps``.
    has_aux: whether ``objective`` returns ``(loss, aux)``; by default read from
      ``objective.has_aux`` (set by :func:`objective`), else False.
    full_batch: declare that every call passes the same batch (full-batch
      optimisation, the usual way to run L-BFGS). The step then reuses the value
      and gradient the line search already computed at the accepted point
      (``optax.value_and_grad_from_state``), saving one evaluation per step
      (not for a model with state, such as an NNX or Linen model, whose state
      must advance). Leave it False with minibatches: the stored values belong
      to the previous batch.
    donate: donate the trained arrays, the carried state and ``opt_state`` to the
      jitted step (their buffers are reused for the outputs; do not use the
      passed-in values afterwards).
    jit: compile the step with ``jax.jit`` (default).
    checked: run jaxloss's runtime checks (those of :func:`jaxloss.checked`: NaN
      inputs, labels out of range, invalid traced options) inside the jitted
      step; a failed check raises ``checkify.JaxRuntimeError`` naming the loss, the
      argument and the value, at the step that met it. It waits for each step's
      result (no asynchronous dispatch across steps): use it while debugging
      (with ``donate=True`` the inputs of the failed step are gone).
    errors: the checkify error set for ``checked`` (``checkify.user_checks``:
      jaxloss's own checks; ``checkify.all_checks`` adds NaN-producing operations,
      division by zero and out-of-bounds indexing anywhere in the step).

  Returns:
    A :class:`Step`: ``step(params_or_model, opt_state, batch) -> (params_or_model,
    opt_state, loss)``, or ``(..., loss, aux)`` with aux; ``loss`` is the objective at
    the incoming parameters. ``params_or_model`` is a pytree of arrays, an
    Equinox module, a Flax NNX module (updated in place, parameters and state,
    and returned) or Flax Linen ``variables``. Initialise the state with
    ``step.init(params_or_model)``.

  Only inexact (floating, complex) arrays are differentiated and updated; integer
  and bool arrays and PRNG keys are carried through the step; other leaves
  (an Equinox module's activation function, Python numbers) are static.
  Every optimizer receives ``value=loss`` (what ``reduce_on_plateau`` needs;
  transformations that do not take it ignore it). When the state holds a line
  search, the step also passes ``grad`` and ``value_fn`` (the objective on this
  batch as a function of the trained parameters).

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import jaxloss as jl
    >>> x = jnp.linspace(-1, 1, 32)[:, None]
    >>> batch = {"inputs": x, "targets": 3 * x[:, 0]}
    >>> f = jl.train.objective(lambda w, x: x @ w, jl.mse)
    >>> step = jl.train.make_step(f, optax.lbfgs(), full_batch=True)
    >>> w = jnp.zeros(1)
    >>> state = step.init(w)
    >>> for _ in range(3):
    ...   w, state, loss = step(w, state, batch)
    >>> print(round(float(w[0]), 4))
    3.0
  """
  if has_aux is None:
    has_aux = bool(getattr(objective, "has_aux", False))
  return Step(
    objective,
    optimizer,
    has_aux=has_aux,
    full_batch=full_batch,
    donate=donate,
    jit=jit,
    checked=checked,
    errors=errors,
  )
