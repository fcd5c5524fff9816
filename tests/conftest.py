"""Test-session configuration.

Strict dtype promotion and rank promotion errors catch silent broadcasting and
implicit casts inside jaxloss (equinox and optimistix test the same way). x64 is
enabled only inside the tests that need float64 references (``jax.enable_x64``).

Memory: every jitted program a test compiles stays in JAX's caches for the life
of the process, so an xdist worker grew to 5 GB over the suite. The caches are
cleared after each test module (a module's tests share their programs; the next
module compiles its own) and, in test_invariants, after a case's tests once the
process holds over 2 GB (its ``case`` fixture is module-scoped, so pytest runs
every test of one case together). That bounds a worker's size and makes its
shutdown quick: a worker still freeing GBs of executables 5 s after the last
test was sent SIGINT by execnet, and the KeyboardInterrupt surfaced in JAX's gc
callback as a traceback after the summary.

Compile time: a cleared program that a later test needs again (the same loss on
the same shapes, the primitives every eager and ``check_grads`` call runs) is
read back from a persistent compilation cache instead of recompiled. The cache
is a fresh temporary directory per test process (each xdist worker has its own,
so none is shared), removed when the process exits: no entry outlives the run.
"""

import atexit
import gc
import os
import shutil
import tempfile

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

_COMPILATION_CACHE = tempfile.mkdtemp(prefix="jaxloss-tests-xla-")
atexit.register(shutil.rmtree, _COMPILATION_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _COMPILATION_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # the suite's programs are small and many
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# Within a module, compiled programs are freed only past this resident size (a clear costs recompiles).
RSS_LIMIT_BYTES = 2 * 2**30


def _resident_bytes() -> int | None:
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
  except (OSError, ValueError, IndexError):
    return None  # not Linux: no figure, clear every time


def _free_compiled_programs() -> None:
  jax.clear_caches()
  gc.collect()


@pytest.fixture(scope="session")
def free_memory_if_large():
  """A function freeing JAX's compiled programs when this process holds over ``RSS_LIMIT_BYTES``.

  For module-scoped parametrised fixtures (test_invariants' ``case``): called in their teardown, it bounds a
  module's growth while the tests of one case keep sharing their programs.
  """

  def free() -> None:
    resident = _resident_bytes()
    if resident is None or resident > RSS_LIMIT_BYTES:
      _free_compiled_programs()

  return free


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs_after_each_module():
  yield
  _free_compiled_programs()


def pytest_sessionfinish(session, exitstatus):
  # Free what is left before the worker reports back, not during its shutdown.
  _free_compiled_programs()
