"""Test-session configuration.

Strict dtype promotion and rank promotion errors catch silent broadcasting and
implicit casts inside jaxloss (equinox and optimistix test the same way). x64 is
enabled only inside the tests that need float64 references (``jax.enable_x64``).

Memory: every jitted program a test compiles stays in JAX's caches for the life
of the process, so an xdist worker grew to 5 GB over the suite. The caches are
cleared after each test module (a module's tests share their programs; the next
module compiles its own), which keeps a worker under 3 GB and makes its
shutdown quick: a worker still freeing GBs of executables 5 s after the last
test was sent SIGINT by execnet, and the KeyboardInterrupt surfaced in JAX's gc
callback as a traceback after the summary.
"""

import gc

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs_after_each_module():
  yield
  jax.clear_caches()
  gc.collect()


def pytest_sessionfinish(session, exitstatus):
  # Free what is left before the worker reports back, not during its shutdown.
  jax.clear_caches()
  gc.collect()
