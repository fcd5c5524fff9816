"""The public API's conventions: signatures, docstrings (run as doctests), the
registry covering every loss, trace-time errors and the checked mode."""

from __future__ import annotations

import doctest
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss as jl
from registry import all_cases

# Public names that are not losses (helpers, modules, wrappers).
NOT_LOSSES = {"checked"}
LOSSES = sorted(
  name
  for name in jl.__all__
  if name not in NOT_LOSSES and callable(getattr(jl, name)) and not inspect.ismodule(getattr(jl, name))
)
SHARED_KEYWORDS = ("reduction", "weights", "where")


def test_all_names_exist():
  for name in jl.__all__:
    assert hasattr(jl, name), name


def test_every_loss_is_in_the_invariants_registry():
  registered = {case.fn for case in all_cases()}
  missing = [name for name in LOSSES if getattr(jl, name) not in registered]
  assert not missing, f"losses without a registry case in tests/cases/: {missing}"


@pytest.mark.parametrize("name", LOSSES)
def test_signature_convention(name):
  params = inspect.signature(getattr(jl, name)).parameters.values()
  kinds = [p.kind for p in params]
  assert inspect.Parameter.VAR_POSITIONAL not in kinds and inspect.Parameter.VAR_KEYWORD not in kinds
  positional = [p for p in params if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
  keyword = {p.name: p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY}
  assert positional, "arrays are positional"
  assert all(p.default is inspect.Parameter.empty for p in positional), "positional arrays have no defaults"
  for shared in SHARED_KEYWORDS:
    assert shared in keyword, f"{name} lacks the keyword-only `{shared}`"
  assert keyword["weights"].default is None and keyword["where"].default is None


@pytest.mark.parametrize("name", LOSSES)
def test_docstring_has_formula_args_returns_reference_example(name):
  doc = inspect.getdoc(getattr(jl, name))
  for part in (".. math::", "Args:", "Returns:", "Example:", ">>>"):
    assert part in doc, f"{name}'s docstring lacks {part!r}"
  for argument in inspect.signature(getattr(jl, name)).parameters:
    assert f"{argument}:" in doc, f"{name}'s docstring does not document `{argument}`"


def _public_callables():
  """Every public function: the top-level names and those of public submodules (jl.train, ...)."""
  out = {}
  for name in jl.__all__:
    obj = getattr(jl, name)
    if inspect.ismodule(obj):
      out.update({f"{name}.{sub}": getattr(obj, sub) for sub in obj.__all__})
    else:
      out[name] = obj
  return out


PUBLIC = _public_callables()


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring_examples_run(name):
  obj = PUBLIC[name]
  parser = doctest.DocTestParser()
  test = parser.get_doctest(inspect.getdoc(obj) or "", {}, name, None, 0)
  assert test.examples, f"{name} has no runnable example"
  runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  # Doctests run as users run them: default dtype promotion.
  with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
    runner.run(test)
  assert runner.failures == 0, f"{name}: {runner.failures} docstring example(s) failed"


# Trace-time errors: the message names the loss, the argument, the expectation and what arrived.
X = jnp.ones((3, 4))


@pytest.mark.parametrize("name", LOSSES)
def test_unknown_reduction_lists_the_valid_ones(name):
  case = next(c for c in all_cases() if c.fn is getattr(jl, name))
  rng = np.random.default_rng(0)
  args = case.make(rng, (2, 3))
  array_kwargs = {} if case.array_kwargs is None else case.array_kwargs(rng, (2, 3))
  with pytest.raises(ValueError, match=r"`reduction` must be one of 'mean', 'sum', 'none', got 'avg'"):
    case.fn(*args, **case.kwargs, **array_kwargs, reduction="avg")


@pytest.mark.parametrize(
  "call, error, pattern",
  [
    (
      lambda: jl.mse(X, jnp.ones((3, 5))),
      ValueError,
      r"jaxloss\.mse: `predictions` and `targets` must have the same shape, got predictions\.shape=\(3, 4\) and targets\.shape=\(3, 5\)",  # noqa: E501
    ),
    (lambda: jl.mse(X, jnp.ones((4,))), ValueError, r"same shape"),
    (
      lambda: jl.mae(jnp.ones(3, jnp.int32), jnp.ones(3)),
      TypeError,
      r"jaxloss\.mae: `predictions` must be a floating-point array, got dtype int32",
    ),
    (lambda: jl.mse(X, jnp.ones((3, 4), jnp.complex64)), TypeError, r"`targets` must be a real-valued array"),
    (
      lambda: jl.huber(X, X, delta=-1.0),
      ValueError,
      r"jaxloss\.huber: `delta` must be a positive number, got -1\.0",
    ),
    (lambda: jl.huber(X, X, delta=0.0), ValueError, r"`delta` must be a positive number"),
    (lambda: jl.huber(X, X, delta="1"), TypeError, r"jaxloss\.huber: `delta` must be a number or an array, got '1'"),
    (lambda: jl.smooth_l1(X, X, beta=-0.5), ValueError, r"`beta` must be a non-negative number, got -0\.5"),
    (lambda: jl.quantile(X, X, q=1.5), ValueError, r"`q` must be in \[0, 1\], got 1\.5"),
    (lambda: jl.mape(X, X, eps=0.0), ValueError, r"`eps` must be a positive number"),
    (lambda: jl.poisson_nll(X, X, eps=-1.0), ValueError, r"`eps` must be a non-negative number"),
    (
      lambda: jl.mse(X, X, weights=jnp.ones(3)),
      ValueError,
      r"`weights` must broadcast to the shape of the per-example loss \(3, 4\), got weights\.shape=\(3,\)",
    ),
    (
      lambda: jl.mse(X, X, where=jnp.ones((2, 4), bool)),
      ValueError,
      r"`where` must broadcast to the shape of `predictions` \(3, 4\), got where\.shape=\(2, 4\)",
    ),
    (
      lambda: jl.mse(X, X, weights=jnp.ones(4, jnp.complex64)),
      TypeError,
      r"`weights` must be a real-valued array",
    ),
    (lambda: jl.rmse(X, X, axis=2), ValueError, r"`axis`=2 is out of range for an array of rank 2"),
    (lambda: jl.rmse(X, X, axis=(1, -1)), ValueError, r"repeats an axis"),
    (
      lambda: jl.rmse(X, X, axis=-1, weights=jnp.ones(3)),
      ValueError,
      r"`weights` must broadcast to the shape of `predictions`",
    ),
    (
      lambda: jl.gaussian_nll(X, X, jnp.ones((4,))),
      ValueError,
      r"`variance` must have the shape of `predictions` \(3, 4\), that shape without its last axis",
    ),
    (
      lambda: jl.gaussian_nll(X, X, jnp.ones((3, 4), jnp.int32)),
      TypeError,
      r"`variance` must be a floating-point array",
    ),
    (lambda: jl.mse(None, X), TypeError, r"`predictions` is required"),
  ],
)
def test_bad_input_fails_at_trace_time(call, error, pattern):
  with pytest.raises(error, match=pattern):
    call()


def test_bad_input_fails_before_compilation_inside_jit():
  with pytest.raises(ValueError, match="same shape"):
    jax.jit(jl.mse).lower(jax.ShapeDtypeStruct((3,), jnp.float32), jax.ShapeDtypeStruct((4,), jnp.float32))


# The checked mode.
def test_checked_returns_the_same_value_on_valid_input():
  p, t = jnp.array([0.5, 2.0]), jnp.array([1.0, 0.0])
  assert float(jl.checked(jl.msle)(p, t)) == float(jl.msle(p, t))
  assert float(jl.checked(jl.mse)(p, t, weights=jnp.array([1.0, 2.0]), reduction="sum")) == 1.0 * 0.25 + 2.0 * 4.0


@pytest.mark.parametrize(
  "call, pattern",
  [
    (
      lambda c: c(jl.msle)(jnp.array([-1.5, 0.0]), jnp.zeros(2)),
      r"jaxloss\.msle: `predictions` must be > -1, found -1\.5",
    ),
    (lambda c: c(jl.msle)(jnp.zeros(2), jnp.array([-3.0, 0.0])), r"`targets` must be > -1, found -3\.0"),
    (
      lambda c: c(jl.mse)(jnp.array([jnp.nan, 0.0]), jnp.zeros(2)),
      r"jaxloss\.mse: `predictions` contains NaN",
    ),
    (lambda c: c(jl.mae)(jnp.zeros(2), jnp.array([0.0, jnp.nan])), r"`targets` contains NaN"),
    (
      lambda c: c(jl.gaussian_nll)(jnp.zeros(2), jnp.zeros(2), jnp.array([1.0, -2.0])),
      r"`variance` must be >= 0, found -2\.0",
    ),
    (
      lambda c: c(jl.poisson_nll)(jnp.zeros(2), jnp.array([-1.0, 2.0])),
      r"`targets` must be >= 0, found -1\.0",
    ),
    (
      lambda c: c(jl.poisson_nll)(jnp.array([-0.5, 1.0]), jnp.ones(2), log_input=False),
      r"`predictions` must be >= 0 \(a rate\)",
    ),
  ],
)
def test_checked_reports_out_of_domain_values(call, pattern):
  with pytest.raises(checkify.JaxRuntimeError, match=pattern):
    call(jl.checked)
  call(lambda f: f)  # unchecked: no error, a value


def test_checked_traces_the_checks_even_after_unchecked_calls_were_cached():
  bad = (jnp.array([-2.0, 0.0]), jnp.array([1.0, 1.0]))
  float(jl.msle(*bad))  # an unchecked call first: its compiled version has no checks
  with pytest.raises(checkify.JaxRuntimeError, match=r"`predictions` must be > -1"):
    jl.checked(jl.msle)(*bad)
  with pytest.raises(checkify.JaxRuntimeError, match=r"`predictions` must be > -1"):
    jl.checked(lambda p, t: 2 * jl.msle(p, t, reduction="sum"))(*bad)  # a function that calls a loss
  float(jl.msle(*bad))  # and unchecked calls afterwards stay unchecked
  assert not jax.make_jaxpr(jl.msle)(*bad).effects


def test_checked_ignores_masked_entries():
  p = jnp.array([jnp.nan, 1.0])
  assert float(jl.checked(jl.mse)(p, jnp.zeros(2), where=jnp.array([False, True]))) == 1.0


def test_outer_jit_of_a_transformed_loss_lowers_the_transformed_function():
  # The loss wrapper's attributes are copied onto jax.grad/jax.jit wrappers by functools.wraps:
  # none of them may shadow the outer jit's lower/trace (it then compiled the bare loss).
  x, t = jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])
  value, (grad,) = jax.jit(jax.value_and_grad(jl.mse, argnums=(0,))).lower(x, t).compile()(x, t)
  assert float(value) == 2.5
  np.testing.assert_array_equal(np.asarray(grad), [1.0, 2.0])
  np.testing.assert_array_equal(np.asarray(jax.jit(jax.grad(jl.mae)).trace(x, t).lower().compile()(x, t)), [0.5, 0.5])


def test_runtime_checks_are_removed_from_compiled_code():
  hlo = jax.jit(jl.msle).lower(jnp.ones(8), jnp.ones(8)).compile().as_text()
  assert "reduce-min" not in hlo.replace("_", "-") and "minimum" not in hlo


# Options are data: numeric options may be traced, structural ones must be Python values.
def _option_kinds(name):
  return getattr(jl, name)._jaxloss_options


@pytest.mark.parametrize("name", LOSSES)
def test_every_numeric_option_is_declared_in_the_registry(name):
  fn = getattr(jl, name)
  numeric = {option for option, kind in _option_kinds(name).items() if kind == "numeric"}
  declared = set().union(*(set(case.options) for case in all_cases() if case.fn is fn))
  assert declared == numeric, f"{name}: registry options {sorted(declared)}, numeric options {sorted(numeric)}"


def _args_entry(doc: str, argument: str) -> str:
  """The text of ``argument``'s entry in the Args section of a docstring."""
  args = doc.split("Args:", 1)[1].split("\n\n", 1)[0]
  lines = args.splitlines()
  start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{argument}:"))
  indent = len(lines[start]) - len(lines[start].lstrip())
  entry = [lines[start]]
  for line in lines[start + 1 :]:
    if line.strip() and len(line) - len(line.lstrip()) <= indent:
      break
    entry.append(line)
  return " ".join(entry)


@pytest.mark.parametrize("name", LOSSES)
def test_numeric_options_say_what_a_traced_value_does(name):
  doc = inspect.getdoc(getattr(jl, name))
  for option, kind in _option_kinds(name).items():
    if kind == "numeric":
      assert "traced" in _args_entry(doc, option).lower(), (
        f"{name}: the Args entry of `{option}` does not say how it is traced"
      )


@pytest.mark.parametrize("name", LOSSES)
def test_structural_options_reject_arrays(name):
  fn = getattr(jl, name)
  positional = [
    p for p in inspect.signature(fn).parameters.values() if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
  ]
  arrays = (X,) if len(positional) == 1 else (X, X)  # entropy takes one array
  for option, kind in _option_kinds(name).items():
    if kind != "static":
      continue
    with pytest.raises(
      TypeError, match=rf"jaxloss\.{name}: `{option}` must be a Python .*fixed at compile time.*array"
    ):
      fn(*arrays, **{option: jnp.asarray(1)})
