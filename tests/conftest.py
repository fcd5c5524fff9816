"""Test-session configuration.

Strict dtype promotion and rank promotion errors catch silent broadcasting and
implicit casts inside jaxloss (equinox and optimistix test the same way). x64 is
enabled only inside the tests that need float64 references (``jax.enable_x64``).
"""

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
