"""``python -m jaxloss``: a short demonstration of what jaxloss's gradients fix."""

import jax
import jax.numpy as jnp

import jaxloss as jl


def main() -> None:
  print(f"jaxloss {jl.__version__} on {jax.devices()[0].platform}, jax {jax.__version__}\n")
  x = jnp.array([0.0, 1.0, 2.0])
  rows = [
    ("d|p-t|/dp at p == t", jax.grad(lambda p: jnp.mean(jnp.abs(p - x)))(x), jax.grad(jl.mae)(x, x)),
    (
      "d rmse/dp at zero error",
      jax.grad(lambda p: jnp.sqrt(jnp.mean((p - x) ** 2)))(x),
      jax.grad(jl.rmse)(x, x),
    ),
    (
      "d max(0, 1-p)/dp at p == 1",
      jax.grad(lambda p: jnp.mean(jnp.maximum(0.0, 1.0 - p)))(jnp.ones(3)),
      jax.grad(lambda p: jl.quantile(p, jnp.ones(3), q=1.0))(jnp.ones(3)),
    ),
  ]
  print(f"{'gradient at the kink':28} {'plain jnp':>24} {'jaxloss':>24}")
  for name, plain, ours in rows:
    print(f"{name:28} {plain!s:>24} {ours!s:>24}")
  p = jnp.array([1.0, jnp.nan, 3.0])
  where = jnp.array([True, False, True])
  print("\nmasked NaN input: mse =", jl.mse(p, x, where=where), " grad =", jax.grad(jl.mse)(p, x, where=where))
  print("all masked:       mse =", jl.mse(p, x, where=jnp.zeros(3, bool)))


if __name__ == "__main__":
  main()
