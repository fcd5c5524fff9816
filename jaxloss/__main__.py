"""``python -m jaxloss``: a short demonstration of what jaxloss's gradients fix."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss as jl


def _show(x: jax.Array) -> str:
  # + 0.0 turns -0.0 into 0.0 (IEEE: -0.0 == 0.0 exactly): the sign of a zero subgradient is no information.
  return np.array2string(np.asarray(x) + 0.0, precision=4, separator=" ", floatmode="maxprec")


def main() -> None:
  print(f"jaxloss {jl.__version__} on {jax.devices()[0].platform}, jax {jax.__version__}\n")
  x = jnp.array([0.0, 1.0, 2.0])
  rows = [
    ("d mean|p-t|/dp at p == t", jax.grad(lambda p: jnp.mean(jnp.abs(p - x)))(x), jax.grad(jl.mae)(x, x)),
    (
      "d rmse/dp at zero error",
      jax.grad(lambda p: jnp.sqrt(jnp.mean((p - x) ** 2)))(x),
      jax.grad(jl.rmse)(x, x),
    ),
    (
      "d mean max(0, 1-p)/dp at p == 1",
      jax.grad(lambda p: jnp.mean(jnp.maximum(0.0, 1.0 - p)))(jnp.ones(3)),
      jax.grad(lambda p: jl.quantile(p, jnp.ones(3), q=1.0))(jnp.ones(3)),
    ),
  ]
  cells = [(name, _show(plain), _show(ours)) for name, plain, ours in rows]
  header = ("gradient at the kink", "plain jnp", "jaxloss")
  widths = [max(len(row[i]) for row in [header, *cells]) for i in range(3)]
  for name, plain, ours in [header, *cells]:
    print(f"{name:<{widths[0]}}   {plain:<{widths[1]}}   {ours}")
  print("(jaxloss: the minimum-norm subgradient, exactly 0 where 0 is a subgradient)")
  p = jnp.array([1.0, jnp.nan, 3.0])
  where = jnp.array([True, False, True])
  grad = _show(jax.grad(jl.mse)(p, x, where=where))
  print(f"\nmasked NaN input: mse = {float(jl.mse(p, x, where=where))}  grad = {grad}")
  print(f"all masked:       mse = {float(jl.mse(p, x, where=jnp.zeros(3, bool)))}")


if __name__ == "__main__":
  main()
