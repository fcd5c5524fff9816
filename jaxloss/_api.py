"""The one decorator every public loss goes through, and the annotations it reads.

A loss is a plain ``def`` whose parameters say, by their annotations, what each
argument is:

* ``Static[T]``: a structural option (``reduction``, ``axis``, a norm's ``p``,
  bool flags, ``ignore_index``, ``chunk_size``, ``axis_name``, ...). It must be
  a hashable Python value; it is part of the compiled program's identity. An
  array there is a ``TypeError`` naming the loss and the option, and a
  ``Static[bool]`` flag accepts only a bool (``"no"`` is not False).
* ``Numeric``: a numeric option (``delta``, ``margin``, ``temperature``, ...).
  Given as a Python (or NumPy scalar) number it is a compile-time constant: the
  program is specialised to it and the loss validates it when it is traced.
  Given as an array (JAX or NumPy) or a tracer it is a traced input: one program
  for all its values, and ``vmap`` / ``grad`` over it work.
* anything else: an array input, always traced (``weights``, ``where``,
  ``class_weights``, ``logit_lengths``, ...). Python lists and tuples are
  converted with ``jnp.asarray`` first, as every ``jnp`` function does.

:func:`loss` derives all of this from the signature (nobody lists names), puts
the loss's public name where the input layer finds it (every message names the
loss), stages the runtime checks only under :func:`jaxloss.checked`, and keeps
the call on JAX's fast C++ dispatch path.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar, overload

import jax
import numpy as np
from jax.typing import ArrayLike

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


class _Marker:
  def __init__(self, name: str):
    self.name = name

  def __repr__(self) -> str:
    return self.name


STATIC = _Marker("static")
NUMERIC = _Marker("numeric")

#: A structural option: a hashable Python value fixed at compile time.
Static = Annotated[T, STATIC]
#: A numeric option: a Python number is a compile-time constant, an array or tracer a traced input.
Numeric = Annotated[float | ArrayLike, NUMERIC]

# The public name of the loss being traced ("jaxloss.huber"), for every message of the input layer.
LOSS: contextvars.ContextVar[str] = contextvars.ContextVar("jaxloss_loss", default="jaxloss")
# True while a loss is traced for jaxloss.checked: only then are runtime checks staged. Outside it a
# checkify.debug_check is removed by XLA, but its effect stays in the jaxpr and takes every call off
# JAX's fast C++ dispatch path (measured: 62 us instead of 6 us per call of a small jl.mse).
CHECKING: contextvars.ContextVar[bool] = contextvars.ContextVar("jaxloss_checking", default=False)


def name() -> str:
  """The public name of the loss being traced, e.g. ``"jaxloss.huber"``."""
  return LOSS.get()


def is_array(value: Any) -> bool:
  """An array or tracer (as opposed to a Python or NumPy scalar number)."""
  return isinstance(value, (jax.Array, np.ndarray)) or hasattr(value, "__jax_array__")


def _kind(annotation) -> tuple[_Marker | None, Any]:
  """``(STATIC | NUMERIC | None, inner type)`` of a parameter's annotation (``Numeric | None`` included)."""
  if typing.get_origin(annotation) in (typing.Union, types.UnionType):
    for member in typing.get_args(annotation):
      marker, inner = _kind(member)
      if marker is not None:
        return marker, inner
  if typing.get_origin(annotation) is Annotated:
    inner, *metadata = typing.get_args(annotation)
    for marker in (STATIC, NUMERIC):
      if any(m is marker for m in metadata):
        return marker, inner
  return None, annotation


def _describe(inner) -> str:
  """What a static option must be, for messages: ``"bool"``, ``"int"``, ``"number"``, ..."""
  options = typing.get_args(inner) if typing.get_origin(inner) in (typing.Union, types.UnionType) else (inner,)
  words = {bool: "bool", int: "int", float: "number", str: "string", type(None): "None"}
  named = [words.get(o, getattr(o, "__name__", str(o))) for o in options]
  return " or ".join(dict.fromkeys(named))


def _static_value(public: str, option: str, value, inner):
  """A static option as it goes into the jit cache key, or a TypeError naming the loss and the option."""
  if is_array(value):
    what = "an array" if isinstance(value, np.ndarray) else "a traced array"
    raise TypeError(
      f"{public}: `{option}` must be a Python {_describe(inner)} (it is fixed at compile time), got {what}."
    )
  if inner is bool:
    if not isinstance(value, (bool, np.bool_)):
      raise TypeError(f"{public}: `{option}` must be a bool, got {value!r}.")
    return bool(value)
  if isinstance(value, list):
    value = tuple(value)
  if not _hashable(value):
    raise TypeError(
      f"{public}: `{option}` must be a hashable Python value (it is fixed at compile time), got {value!r}."
    )
  return value


def _hashable(value) -> bool:
  try:
    hash(value)
  except TypeError:
    return False
  return True


def _as_array(value):
  """Python lists and tuples become arrays (``jnp.asarray``); anything else passes through."""
  if isinstance(value, (list, tuple)):
    import jax.numpy as jnp

    return jnp.asarray(value)
  return value


@overload
def loss(fn: Callable[P, R], *, public_name: str | None = None) -> Callable[P, R]: ...
@overload
def loss(fn: None = None, *, public_name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def loss(fn: Callable[P, R] | None = None, *, public_name: str | None = None) -> Any:
  """Compile a public loss with ``jax.jit``; its static and numeric options come from the annotations.

  ``public_name`` (default ``"jaxloss.<name>"``) is the name every message of
  the loss uses. Positional parameters are the loss's arrays; parameters after
  them may be passed positionally too (the optax mirror's signatures), and are
  classified like keyword ones.
  """
  if fn is None:
    return functools.partial(loss, public_name=public_name)
  public = public_name or f"jaxloss.{fn.__name__}"
  hints = typing.get_type_hints(fn, include_extras=True)
  parameters = list(inspect.signature(fn).parameters.values())
  order = [p.name for p in parameters]
  kinds: dict[str, tuple[_Marker | None, Any]] = {p.name: _kind(hints.get(p.name)) for p in parameters}
  # Leading positional parameters without an option annotation: the arrays, passed as a tuple.
  arrays = 0
  for p in parameters:
    if p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD or kinds[p.name][0] is not None:
      break
    arrays += 1
  positional = [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]

  def traced(args, options, static):
    checking, *constants = static
    tokens = (LOSS.set(public), CHECKING.set(checking))
    try:
      return fn(*args, **options, **dict(constants))
    finally:
      CHECKING.reset(tokens[1])
      LOSS.reset(tokens[0])

  traced.__name__ = traced.__qualname__ = fn.__name__  # the name XLA and profilers show
  jitted = jax.jit(traced, static_argnums=(2,))

  @functools.wraps(fn)
  def call(*args, **kwargs):
    if len(args) > arrays:
      if len(args) > len(positional):
        raise TypeError(f"{public}() takes {len(positional)} positional arguments but {len(args)} were given.")
      for key, value in zip(positional[arrays:], args[arrays:], strict=False):
        if key in kwargs:
          raise TypeError(f"{public}() got multiple values for argument {key!r}.")
        kwargs[key] = value
      args = args[:arrays]
    options, constants = {}, []
    for key, value in kwargs.items():
      entry = kinds.get(key)
      if entry is None:
        raise TypeError(f"{public}() got an unexpected keyword argument {key!r}.")
      marker, inner = entry
      if marker is STATIC:
        constants.append((key, _static_value(public, key, value, inner)))
      elif marker is NUMERIC and not is_array(value):
        if not _hashable(value):
          raise TypeError(f"{public}: `{key}` must be a number or an array, got {value!r}.")
        constants.append((key, value))  # the loss validates it while tracing, with its own message
      else:
        options[key] = _as_array(value)
    constants.sort(key=lambda item: order.index(item[0]))
    return jitted(tuple(_as_array(a) for a in args), options, (CHECKING.get(), *constants))

  # No `lower`/`trace`/`clear_cache` attributes: functools.wraps (in jax.grad, jax.jit, ...) copies
  # them onto every wrapper, where they shadow the wrapper's own methods, and
  # jax.jit(jax.value_and_grad(loss)).lower(...) then compiled the bare loss. The cache size (for
  # the no-retrace tests) and the option kinds go under names no JAX wrapper has.
  call.__dict__.update(
    _jaxloss_cache_size=jitted._cache_size,  # type: ignore[attr-defined]  # a private JAX method, for tests
    _jaxloss_options={
      key: marker.name for key, (marker, _) in kinds.items() if marker is not None and key not in order[:arrays]
    },
  )
  return call
