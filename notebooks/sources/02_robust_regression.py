# %% [markdown]
# # Robust regression: MSE, MAE, Huber and quantile losses with optax and Equinox
#
# scikit-learn's diabetes data set (442 patients, 10 measurements each, a disease-progression score one year
# later; bundled with scikit-learn, no download) with one target in five of the training set corrupted: shifted
# up by 3 to 6 standard deviations, as a unit mix-up or a data-entry error would. A small Equinox MLP is fitted
# with four losses from jaxloss, trained by optax through `jl.train`, and scored on the *clean* test targets.
# The notebook shows why the squared error is pulled towards the corrupted targets while the absolute error,
# the Huber loss and the median (quantile) loss are not, sweeps Huber's `delta` with a single compiled step
# (the option is traced), and runs the same objective with L-BFGS, whose line search needs the loss value and
# a function to re-evaluate it.

# %%
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from sklearn.datasets import load_diabetes

import jaxloss as jl

plt.rcParams.update({"figure.dpi": 80})
data = load_diabetes()
x = (data.data / data.data.std(axis=0)).astype(np.float32)
y = ((data.target - data.target.mean()) / data.target.std()).astype(np.float32)  # in standard deviations

rng = np.random.default_rng(0)
order = rng.permutation(len(x))
train, test = order[:342], order[342:]
corrupted = rng.uniform(size=len(train)) < 0.2
y_train = np.where(corrupted, y[train] + rng.uniform(3, 6, len(train)), y[train]).astype(np.float32)
batch = {"inputs": jnp.asarray(x[train]), "targets": jnp.asarray(y_train)}
clean_batch = {"inputs": jnp.asarray(x[train]), "targets": jnp.asarray(y[train])}
x_test, y_test = jnp.asarray(x[test]), y[test]
print(f"{len(train)} training patients, {corrupted.sum()} of them with a corrupted target; {len(test)} test patients")

# %% [markdown]
# ## One model, four losses
#
# The model is an `eqx.nn.MLP` with 8 ReLU units. An Equinox module *is* its parameters: `jl.train.make_step`
# trains its floating-point arrays and keeps the rest (here the activation functions, which are leaves of the
# module too) static, as `eqx.filter_jit` and `eqx.filter_value_and_grad` do; `step.init(model)` is
# `optimizer.init(eqx.filter(model, eqx.is_inexact_array))`. An Equinox model sees one example, so the
# objective's model function is `jax.vmap(model)(x)`. Only the loss changes between the fits: `mse`, `mae`,
# `huber` (quadratic below `delta`, linear above) and `quantile` at `q = 0.5` (half the absolute error: it fits
# the median). A fifth fit, MSE on the clean targets, is the reference a robust loss should approach.


# %%
def per_example(model, x):
  return jax.vmap(model)(x)


def new_model():
  return eqx.nn.MLP(10, "scalar", 8, 1, activation=jax.nn.relu, key=jax.random.key(0))


def fit(loss, data=batch, steps=200, **options):
  optimizer = optax.adamw(1e-2, weight_decay=1e-2)
  step = jl.train.make_step(jl.train.objective(per_example, loss, **options), optimizer)
  model = new_model()
  opt_state = step.init(model)
  curve = []
  for _ in range(steps):
    model, opt_state, value = step(model, opt_state, data)
    curve.append(float(value))
  return model, np.array(curve)


def test_mse(model):
  return float(np.mean((np.asarray(per_example(model, x_test)) - y_test) ** 2))


losses = {
  "mse": (jl.mse, {}),
  "mae": (jl.mae, {}),
  "huber (delta=1)": (jl.huber, {"delta": 1.0}),
  "quantile (q=0.5)": (jl.quantile, {"q": 0.5}),
}
with jax.numpy_dtype_promotion("standard"):  # Equinox and optax use standard promotion
  fits = {name: fit(loss, **options) for name, (loss, options) in losses.items()}
  reference, _ = fit(jl.mse, clean_batch)

print(f"{'loss':18} {'test MSE (clean targets)':>25}")
print(f"{'mse, clean data':18} {test_mse(reference):25.3f}")
for name, (model, _) in fits.items():
  print(f"{name:18} {test_mse(model):25.3f}")
print(f"{'predict 0':18} {float(np.mean(y_test**2)):25.3f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
lim = (-2.5, 3.0)
left.plot(lim, lim, "k--", lw=1)
for name, (model, _) in fits.items():
  if name != "quantile (q=0.5)":  # coincides with mae: half the absolute error
    left.scatter(y_test, np.asarray(per_example(model, x_test)), s=10, label=name)
left.set(title="test patients: prediction vs clean target", xlabel="target", ylabel="prediction", xlim=lim, ylim=lim)
left.legend(fontsize=8)
for name, (_, curve) in fits.items():
  right.plot(curve / curve[0], label=name)
right.set(title="training curves (loss / initial loss), AdamW", xlabel="step", yscale="log")
right.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The gradients explain the fits
#
# The squared error's gradient grows with the residual, so each corrupted target pulls the model with a force
# proportional to how wrong it is: the MSE fit predicts too high for everyone. The absolute error's gradient is
# `sign(residual)`: every point pulls with the same force, so a minority of outliers cannot move the median much.
# Huber is quadratic near zero (smooth, fast convergence) and its gradient is clipped at `delta`. jaxloss's MAE
# and quantile gradients are exactly 0 at a zero residual (the minimum-norm subgradient), so a fit does not
# jitter around points it passes through.

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
# ## Huber's `delta`, swept with one compiled step
#
# A numeric option given as an array is a traced input: one compiled program serves every value. A batch key
# that the loss takes goes to the loss, so `delta` can travel in the batch (as a schedule would). Small `delta`
# behaves like the absolute error, large `delta` like the squared error; in between, Huber keeps the fast,
# smooth convergence of the square near zero and the robustness of the absolute value far out.

# %%
deltas = [0.1, 0.3, 1.0, 3.0, 10.0]
optimizer = optax.adamw(1e-2, weight_decay=1e-2)
step = jl.train.make_step(jl.train.objective(per_example, jl.huber), optimizer)
sweep = []
with jax.numpy_dtype_promotion("standard"):
  for delta in deltas:
    model = new_model()
    opt_state = step.init(model)
    for _ in range(200):
      model, opt_state, _ = step(model, opt_state, {**batch, "delta": jnp.float32(delta)})
    sweep.append(test_mse(model))
print("test MSE by delta:", {d: round(e, 3) for d, e in zip(deltas, sweep, strict=True)})
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(deltas, sweep, "o-")
ax.axhline(test_mse(reference), color="k", ls="--", lw=1, label="mse on clean data")
ax.set(xscale="log", xlabel="delta (standard deviations)", ylabel="test MSE", title="Huber fits")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## L-BFGS through the same step builder
#
# `optax.lbfgs` runs a zoom line search, which needs the objective's value, its gradient and a function to
# evaluate the objective at trial points. `make_step` passes all three. With `full_batch=True` (the same batch
# at every step) it also reuses the value and gradient that the line search already computed at the accepted
# point, saving one evaluation per step. L-BFGS drives the training loss of the same Equinox model down quickly,
# and, without weight decay, it soon fits the noise of 342 patients: the test error rises again after about 20
# steps (stop early, or add an L2 term to the objective).

# %%
optimizer = optax.lbfgs()
step = jl.train.make_step(jl.train.objective(per_example, jl.huber), optimizer, full_batch=True)
model = new_model()
opt_state = step.init(model)
with jax.numpy_dtype_promotion("standard"):
  for i in range(40):
    model, opt_state, value = step(model, opt_state, batch)
    if i % 10 == 9:
      print(f"step {i + 1}: huber loss {float(value):.4f}, test MSE on clean targets {test_mse(model):.3f}")

# %% [markdown]
# ## What to take away
#
# - With corrupted targets, the squared error fits a biased model; the absolute error, Huber and the median
#   (q = 0.5 quantile) stay close to the fit on clean data. Pick the loss for the noise you expect.
# - `delta` sets where Huber switches from square to absolute value; as a traced option it can be swept, put
#   on a schedule or learned without recompiling.
# - An Equinox module goes through `jl.train.make_step` as it is: floating arrays trained, everything else
#   static. The same objective / step pair drives AdamW and L-BFGS; the step builder gives each optax
#   optimizer what it needs (`value`, `grad`, `value_fn`).
