"""optax's own loss tests, run against ``jaxloss.compat.optax``.

At import time each ``optax/losses/*_test.py`` of the installed optax is
executed as a module while ``optax.losses._regression``, ``_classification``,
... are replaced (in ``sys.modules`` and on the ``optax.losses`` package) by
proxy modules holding only the mirror's functions: the test code binds the
proxies, never optax's loss code, and any name the mirror lacks fails loudly.
The absltest TestCase classes are re-exported here for pytest to collect.
No optax test code is copied into this repository.

optax's tests rely on standard dtype promotion and implicit rank promotion, so
an autouse fixture relaxes ``tests/conftest.py``'s strict settings for this
module (as tests/test_train.py does for optax's optimisers).

``EXCLUDED`` would name the optax tests that assert behaviour jaxloss changes
on purpose, each with its reason and a jaxloss test asserting jaxloss's
behaviour instead. optax 0.2.8's tests need none: they never reach the points
where jaxloss differs (gradients at kinks, -inf logits, zero vectors, CTC
without an alignment), so the tests at the end of this module assert jaxloss's
behaviour there, next to optax's.
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import inspect
import pathlib
import sys
import types
import unittest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.losses
import pytest

import jaxloss as jl
from jaxloss.compat import optax as mirror

# optax's private loss modules, which its tests import and we point at the mirror.
LOSS_MODULES = (
  "_classification",
  "_fenchel_young",
  "_ranking",
  "_regression",
  "_segmentation",
  "_self_supervised",
  "_smoothing",
)

# optax.losses has no __all__: its public names are those without a leading underscore (32 in 0.2.8).
OPTAX_NAMES = frozenset(name for name in dir(optax.losses) if not name.startswith("_"))

# "<test file>::<TestCase>::<test method>" -> why jaxloss deliberately differs (none needed for optax 0.2.8).
EXCLUDED: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _optax_promotion():
  """optax's test code relies on standard dtype promotion and implicit rank promotion."""
  with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
    yield


def _proxy(name: str) -> types.ModuleType:
  """A stand-in for ``optax.losses.<name>`` holding the mirror's version of each public loss it defines."""
  real = importlib.import_module(f"optax.losses.{name}")
  proxy = types.ModuleType(f"optax.losses.{name}", f"jaxloss.compat.optax standing in for optax.losses.{name}")
  for public in OPTAX_NAMES:
    if hasattr(real, public):
      setattr(proxy, public, getattr(mirror, public))
  return proxy


_BOUND: list[tuple[types.ModuleType, str]] = []  # (executed optax test module, loss module name it imported)


def _load_optax_tests() -> dict[str, type]:
  """Execute each optax loss test module against the proxies; return its TestCase classes by unique name."""
  spec = importlib.util.find_spec("optax")
  directory = pathlib.Path(spec.origin).parent / "losses"
  proxies = {name: _proxy(name) for name in LOSS_MODULES}
  cases = {}
  for path in sorted(directory.glob("*_test.py")):
    saved_modules = {f"optax.losses.{n}": sys.modules.get(f"optax.losses.{n}") for n in LOSS_MODULES}
    saved_attributes = {n: getattr(optax.losses, n, None) for n in LOSS_MODULES}
    try:
      for name, proxy in proxies.items():
        sys.modules[f"optax.losses.{name}"] = proxy
        setattr(optax.losses, name, proxy)
      module_spec = importlib.util.spec_from_file_location(f"optax_suite.{path.stem}", path)
      module = importlib.util.module_from_spec(module_spec)
      module_spec.loader.exec_module(module)
      _BOUND.extend((module, name) for name in LOSS_MODULES if name in vars(module))
    finally:
      for key, value in saved_modules.items():
        if value is None:
          sys.modules.pop(key, None)
        else:
          sys.modules[key] = value
      for name, value in saved_attributes.items():
        if value is None:
          delattr(optax.losses, name)
        else:
          setattr(optax.losses, name, value)
    for attribute, value in vars(module).items():
      if isinstance(value, type) and issubclass(value, unittest.TestCase) and value.__module__ == module.__name__:
        overrides = {"__module__": __name__, "__source_file__": path.name}
        for method in list(vars(value)):
          if f"{path.name}::{attribute}::{method}" in EXCLUDED:
            overrides[method] = None  # unittest (and pytest) collect only callables
        cases[f"Optax{path.stem}_{attribute}"] = type(f"Optax{path.stem}_{attribute}", (value,), overrides)
  return cases


globals().update(_load_optax_tests())


def test_every_optax_loss_test_runs():
  """All of optax's loss tests are collected here, less the named exclusions (each of which exists)."""
  loader = unittest.TestLoader()
  collected, optax_tests = set(), set()
  for cls in globals().values():
    if isinstance(cls, type) and hasattr(cls, "__source_file__"):
      prefix = f"{cls.__source_file__}::{cls.__mro__[1].__name__}::"
      collected |= {prefix + name for name in loader.getTestCaseNames(cls)}
      optax_tests |= {prefix + name for name in loader.getTestCaseNames(cls.__mro__[1])}
  assert set(EXCLUDED) <= optax_tests
  assert collected == optax_tests - set(EXCLUDED)
  if optax.__version__ == "0.2.8":
    assert len(optax_tests) == 178


def test_names_match_optax():
  assert len(OPTAX_NAMES) == 32
  assert set(mirror.__all__) == OPTAX_NAMES
  defined = {
    name
    for name, value in vars(mirror).items()
    if not name.startswith("_")
    and inspect.isfunction(inspect.unwrap(value))
    and inspect.unwrap(value).__module__ == mirror.__name__
  }
  assert defined == OPTAX_NAMES


@pytest.mark.parametrize("name", sorted(OPTAX_NAMES))
def test_signature_matches_optax(name):
  ours, theirs = inspect.signature(getattr(mirror, name)), inspect.signature(getattr(optax.losses, name))
  assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
    (p.name, p.kind, p.default) for p in theirs.parameters.values()
  ]


def test_mirror_doctest():
  results = doctest.testmod(mirror, optionflags=doctest.NORMALIZE_WHITESPACE)
  assert results.attempted > 0 and results.failed == 0


def test_traced_options():
  p, t = jnp.array([0.5, 3.0]), jnp.zeros(2)
  for delta, expected in ((1.0, [0.125, 2.5]), (2.0, [0.125, 4.0])):
    np.testing.assert_allclose(jax.jit(mirror.huber_loss)(p, t, delta=delta), expected, rtol=1e-6)


# The family modules: the mirror uses their public losses (through `jaxloss`), never their private helpers.
FAMILIES = frozenset(
  path.stem for path in pathlib.Path(jl.__file__).parent.glob("*.py") if not path.stem.startswith("_")
)


def test_mirror_builds_on_public_losses():
  """compat/optax.py imports no family module and no private name of one; it reaches jaxloss as ``jl.<public>``.

  Allowed: ``jaxloss`` itself (public names only), the package-level private
  modules (``jaxloss._custom``, ``jaxloss._lattice``, ...), nothing else.
  """
  tree = ast.parse(pathlib.Path(mirror.__file__).read_text())
  modules = {}  # local name -> the jaxloss module it is bound to
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        if alias.name.split(".")[0] == "jaxloss":
          modules[alias.asname or "jaxloss"] = alias.name if alias.asname else "jaxloss"
    elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "jaxloss":
      for alias in node.names:
        parts = [*node.module.split("."), alias.name]
        assert not any(part in FAMILIES for part in parts[1:]), f"imports a family module: {'.'.join(parts)}"
        assert not (alias.name.startswith("_") and len(parts) > 2), f"imports a private name: {'.'.join(parts)}"
        if node.module == "jaxloss" and alias.name.startswith("_"):
          modules[alias.asname or alias.name] = f"jaxloss.{alias.name}"
        else:
          assert node.module != "jaxloss" or alias.name in jl.__all__, f"jaxloss.{alias.name} is not public"
  assert modules.get("jl") == "jaxloss" and all(m == "jaxloss" or m.startswith("jaxloss._") for m in modules.values())
  used = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
      used.add(f"{modules[node.value.id]}.{node.attr}")
      if modules[node.value.id] == "jaxloss":
        assert node.attr in jl.__all__, f"jl.{node.attr} is not a public loss"
  # At run time too: no global of the mirror is a family module or a private function of one.
  for value in vars(mirror).values():
    origin = getattr(value, "__module__", None) if callable(value) else getattr(value, "__name__", None)
    if isinstance(origin, str) and origin.split(".")[0] == "jaxloss" and origin.split(".")[1:2] != ["compat"]:
      assert origin == "jaxloss" or origin.split(".")[1].startswith("_"), origin
  # The losses the mirror is built on, as the issue lists them (a renamed loss fails here, not silently).
  public = {name.removeprefix("jaxloss.") for name in used if name.count(".") == 1 and name.startswith("jaxloss.")}
  assert public >= {"cross_entropy", "ctc", "huber", "kl_divergence", "ntxent", "sigmoid_focal", "tversky"}


# (mirror function, arrays, option, two values): the option as a constant, a traced array and under vmap.
_x, _t = jnp.array([[0.5, -1.0, 2.0], [0.1, 0.2, -0.3]]), jnp.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
_e, _labels = jnp.array([[1.0, 0.0], [0.8, 0.3], [0.0, 1.0], [-0.2, 0.9]]), jnp.array([0, 0, 1, 1])
TRACED = (
  (mirror.huber_loss, (_x, _t), "delta", (0.5, 2.0)),
  (mirror.cosine_similarity, (0.1 * _x, _t), "epsilon", (0.0, 0.5)),
  (mirror.poly_loss_cross_entropy, (_x, _t), "epsilon", (2.0, -1.0)),
  (mirror.sigmoid_focal_loss, (_x, _t), "gamma", (2.0, 0.5)),
  (mirror.sigmoid_focal_loss, (_x, _t), "alpha", (0.25, 0.75)),
  (mirror.ntxent, (_e, _labels), "temperature", (0.1, 0.5)),
  (mirror.triplet_margin_loss, (_x, _t, 2 * _x), "margin", (1.0, 0.2)),
  (mirror.triplet_margin_loss, (_x, _t, 2 * _x), "norm_degree", (2, 3)),
  (mirror.triplet_margin_loss, (_x, _t, 2 * _x), "eps", (1e-6, 0.1)),
  (mirror.dice_loss, (_x[None], _t[None]), "smooth", (1.0, 0.0)),
  (mirror.dice_loss, (_x[None], _t[None]), "beta", (0.5, 0.9)),
  (mirror.smooth_labels, (_t,), "alpha", (0.1, 0.3)),
)


@pytest.mark.parametrize(("fn", "arrays", "option", "values"), TRACED, ids=lambda v: getattr(v, "__name__", None))
def test_options_may_be_traced(fn, arrays, option, values):
  """As in optax, every numeric option may be an array or a tracer: vmap over it equals the constant calls."""
  constant = [fn(*arrays, **{option: v}) for v in values]
  traced = jax.vmap(lambda v: fn(*arrays, **{option: v}))(jnp.asarray(values, jnp.float32))
  np.testing.assert_allclose(traced, jnp.stack(constant), rtol=1e-5, atol=1e-6)
  assert not np.allclose(constant[0], constant[1])  # the option matters


def test_learned_options_have_gradients():
  """A learned temperature (ntxent) and delta (huber): grad with respect to the option matches finite differences."""
  for f, v in (
    (lambda t: mirror.ntxent(_e, _labels, t), 0.3),
    (lambda d: mirror.huber_loss(_x, _t, delta=d).sum(), 0.4),
  ):
    h = 1e-3
    expected = (f(jnp.float32(v + h)) - f(jnp.float32(v - h))) / (2 * h)
    np.testing.assert_allclose(jax.grad(f)(jnp.float32(v)), expected, rtol=1e-2)


def test_optax_tests_bind_the_mirror():
  for module, name in _BOUND:
    proxy = vars(module)[name]
    assert proxy is not sys.modules[f"optax.losses.{name}"]
    functions = {f: value for f, value in vars(proxy).items() if not f.startswith("_")}
    assert functions and all(value is getattr(mirror, f) for f, value in functions.items())
  assert {name for _, name in _BOUND} == set(LOSS_MODULES)


# jaxloss's conventions where the mirror deliberately differs from optax (optax's tests do not cover these points).


def test_hinge_gradients_are_zero_at_the_kink():
  one = jnp.array(1.0)
  assert jax.grad(mirror.hinge_loss)(one, one) == 0  # optax: -0.5 (jnp.maximum splits the tie)
  assert jax.grad(optax.losses.hinge_loss)(one, one) == -0.5
  assert jax.jvp(lambda s: mirror.hinge_loss(s, one), (one,), (one,))[1] == 0
  assert jax.grad(mirror.perceptron_loss)(jnp.array(0.0), one) == 0
  a, p, n = jnp.zeros((1, 2)), jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]])  # d(a, p) = d(a, n): on the hinge
  grad = jax.grad(lambda a: mirror.triplet_margin_loss(a, p, n, margin=0.0).sum())(a)
  np.testing.assert_array_equal(grad, 0.0)


def test_ties_share_the_gradient():
  scores = jnp.array([2.0, 2.0, 0.0])
  np.testing.assert_allclose(jax.grad(mirror.multiclass_perceptron_loss)(scores, jnp.array(2)), [0.5, 0.5, -1.0])


def test_edges_are_finite():
  logits, labels = jnp.array([0.0, -jnp.inf, 1.0]), jnp.array([0.5, 0.0, 0.5])
  for loss in (mirror.softmax_cross_entropy, mirror.safe_softmax_cross_entropy, mirror.poly_loss_cross_entropy):
    value, grad = jax.value_and_grad(loss)(logits, labels)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and grad[1] == 0
  assert np.isnan(optax.losses.softmax_cross_entropy(logits, labels))  # optax: 0 * -inf
  excluded = mirror.softmax_cross_entropy_with_integer_labels(jnp.zeros((1, 3)), jnp.array([1]), where=[[1, 0, 1]])
  assert excluded == jnp.inf  # probability 0 (optax: log 2, the normaliser of the other classes)
  log_p, targets = jnp.array([-jnp.inf, 0.0]), jnp.array([0.0, 1.0])
  value, grad = jax.value_and_grad(mirror.kl_divergence)(log_p, targets)
  assert value == 0 and np.all(np.isfinite(grad))
  zero, other = jnp.zeros(3), jnp.array([1.0, 2.0, 3.0])
  np.testing.assert_array_equal(jax.grad(mirror.cosine_similarity)(zero, other), 0.0)  # optax: NaN
  assert np.all(np.isnan(jax.grad(optax.losses.cosine_similarity)(zero, other)))


def test_ctc_without_an_alignment_is_inf_with_zero_gradient():
  logits, labels = jnp.zeros((1, 1, 3)), jnp.array([[1, 2]])  # two labels cannot fit in one step
  paddings = jnp.zeros((1, 1)), jnp.zeros((1, 2))
  value, grad = jax.value_and_grad(lambda x: mirror.ctc_loss(x, paddings[0], labels, paddings[1]).sum())(logits)
  assert value == jnp.inf  # optax: about -2 * log_epsilon
  np.testing.assert_array_equal(grad, 0.0)


def test_mirror_is_strict_promotion_clean():
  x, y = jnp.array([[0.5, -1.0, 2.0]]), jnp.array([[0.0, 1.0, 0.0]])
  calls = (
    lambda: mirror.huber_loss(x, y, delta=0.5),
    lambda: mirror.cosine_distance(x, y),
    lambda: mirror.softmax_cross_entropy(x, y),
    lambda: mirror.softmax_cross_entropy_with_integer_labels(x, jnp.array([1])),
    lambda: mirror.poly_loss_cross_entropy(x, y, epsilon=1.0),
    lambda: mirror.sigmoid_focal_loss(x, y, alpha=0.25),
    lambda: mirror.kl_divergence(jax.nn.log_softmax(x), jax.nn.softmax(y)),
    lambda: mirror.triplet_margin_loss(x, y, 2 * x),
    lambda: mirror.ranking_softmax_loss(x, y),
    lambda: mirror.smooth_labels(y, 0.1),
  )
  standard = [call() for call in calls]  # under this module's fixture
  with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
    strict = [call() for call in calls]
  for a, b in zip(standard, strict, strict=True):
    np.testing.assert_allclose(a, b)
