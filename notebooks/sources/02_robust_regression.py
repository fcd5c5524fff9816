# %% [markdown]
# # Robust regression: MSE, MAE, Huber and quantile losses with optax
#
# This notebook fits a straight line to data in which some targets are wildly wrong (outliers), with four
# losses from jaxloss, trained by optax through `jl.train`. It shows why the squared error is pulled towards
# outliers while the absolute error, the Huber loss and the quantile (pinball) loss are not, what the fitted
# lines and training curves look like, and how the same objective runs with a first-order optimizer (Adam)
# and with L-BFGS, whose line search needs the loss value and a function to re-evaluate it.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxloss as jl

rng = np.random.default_rng(0)
n = 200
x = rng.uniform(-2, 2, n).astype(np.float32)
y_clean = 2 * x + 1
y = y_clean + 0.3 * rng.normal(size=n)
outlier = rng.uniform(size=n) < 0.15
y = np.where(outlier, y + rng.uniform(10, 25, n), y).astype(np.float32)  # 15% of targets shifted up
batch = {"inputs": jnp.asarray(x[:, None]), "targets": jnp.asarray(y)}
print(f"{outlier.sum()} outliers out of {n} points")

# %% [markdown]
# ## One model, four losses
#
# The model is `x @ w + b`. `jl.train.objective` turns the model and a loss into `objective(params, batch)`,
# and `jl.train.make_step` turns that and an optax optimizer into a jitted training step. Only the loss
# changes between the four fits: `mse`, `mae`, `huber` (quadratic below `delta`, linear above) and
# `quantile` at two levels. The quantile loss at `q = 0.5` is half the absolute error and fits the median;
# at `q = 0.9` it fits the line below which 90% of the targets fall, here pulled up by the outliers on purpose.


# %%
def linear(params, x):
  return x @ params["w"] + params["b"]


def fit(loss, optimizer, steps=500, **options):
  step = jl.train.make_step(jl.train.objective(linear, loss, **options), optimizer)
  params = {"w": jnp.zeros(1), "b": jnp.zeros(())}
  state = optimizer.init(params)
  curve = []
  for _ in range(steps):
    params, state, value = step(params, state, batch)
    curve.append(float(value))
  return params, np.array(curve)


losses = {
  "mse": (jl.mse, {}),
  "mae": (jl.mae, {}),
  "huber (delta=1)": (jl.huber, {"delta": 1.0}),
  "quantile (q=0.5)": (jl.quantile, {"q": 0.5}),
  "quantile (q=0.9)": (jl.quantile, {"q": 0.9}),
}
fits = {name: fit(loss, optax.adam(0.05), **options) for name, (loss, options) in losses.items()}

x_test = np.linspace(-2, 2, 101, dtype=np.float32)
print(f"{'loss':18} {'w':>6} {'b':>6} {'MSE vs the clean line':>22}")
for name, (params, _) in fits.items():
  pred = np.asarray(linear(params, jnp.asarray(x_test[:, None])))
  clean_error = np.mean((pred - (2 * x_test + 1)) ** 2)
  print(f"{name:18} {float(params['w'][0]):6.3f} {float(params['b']):6.3f} {clean_error:22.4f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
left.scatter(x[~outlier], y[~outlier], s=8, c="0.6", label="data")
left.scatter(x[outlier], y[outlier], s=8, c="tab:red", label="outliers")
left.plot(x_test, 2 * x_test + 1, "k--", lw=1, label="true line")
for name, (params, _) in fits.items():
  style = ":" if name == "quantile (q=0.5)" else "-"  # coincides with mae: half the absolute error
  left.plot(x_test, np.asarray(linear(params, jnp.asarray(x_test[:, None]))), style, lw=2, label=name)
left.set(title="fitted lines", xlabel="x", ylabel="y")
left.legend(fontsize=8)
for name, (_, curve) in fits.items():
  right.plot(curve / curve[0], label=name)
right.set(title="training curves (loss / initial loss), Adam", xlabel="step", yscale="log")
right.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The gradients explain the fits
#
# The squared error's gradient grows with the residual, so each outlier pulls the line with a force
# proportional to how wrong it is. The absolute error's gradient is `sign(residual)`: every point pulls with
# the same force, so a minority of outliers cannot move the median. Huber is quadratic near zero (smooth,
# fast convergence) and has a gradient clipped at `delta`. jaxloss's MAE and quantile gradients are exactly 0
# at a zero residual (the minimum-norm subgradient), which is why the MAE fit settles instead of jittering
# around points it passes through.

# %%
residual = jnp.linspace(-3, 3, 601)
zeros = jnp.zeros_like(residual)
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, f in {
  "mse": lambda p: jl.mse(p, zeros, reduction="sum"),
  "mae": lambda p: jl.mae(p, zeros, reduction="sum"),
  "huber": lambda p: jl.huber(p, zeros, reduction="sum"),
  "quantile q=0.9": lambda p: jl.quantile(p, zeros, q=0.9, reduction="sum"),
}.items():
  ax.plot(residual, jax.grad(f)(residual), label=name)
ax.set(title="gradient with respect to the prediction", xlabel="prediction - target", ylim=(-3, 3))
ax.legend(fontsize=8)
plt.show()
print("gradient of mae at a zero residual:", jax.grad(jl.mae)(jnp.zeros(3), jnp.zeros(3)))

# %% [markdown]
# ## L-BFGS through the same step builder
#
# `optax.lbfgs` runs a zoom line search, which needs the objective's value, its gradient and a function to
# evaluate the objective at trial points. `make_step` passes all three. With `full_batch=True` (the same batch
# at every step) it also reuses the value and gradient that the line search already computed at the accepted
# point, saving one evaluation per step. The Huber fit converges in a handful of steps.

# %%
optimizer = optax.lbfgs()
step = jl.train.make_step(jl.train.objective(linear, jl.huber), optimizer, full_batch=True)
params = {"w": jnp.zeros(1), "b": jnp.zeros(())}
state = optimizer.init(params)
for i in range(10):
  params, state, value = step(params, state, batch)
  print(f"step {i}: huber loss {float(value):.5f}   w = {float(params['w'][0]):.4f}, b = {float(params['b']):.4f}")

# %% [markdown]
# ## What to take away
#
# - With outliers in the targets, the squared error fits a biased line; the absolute error, Huber and the
#   median (q = 0.5 quantile) stay on the clean line. Pick the loss for the noise you expect.
# - Higher quantiles fit where a chosen fraction of the data lies below the line, which is useful for
#   prediction intervals, not for ignoring outliers.
# - The same `jl.train.objective` / `jl.train.make_step` pair drives Adam and L-BFGS; the step builder gives
#   each optax optimizer what it needs (`value`, `grad`, `value_fn`).
