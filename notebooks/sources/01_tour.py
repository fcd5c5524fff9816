# %% [markdown]
# # A tour of jaxloss: every loss family with its gradient
#
# This notebook plots the losses of each family in jaxloss (regression, classification, metric learning,
# ranking, divergences) next to their derivatives, as functions of one number: a residual, a logit, a
# distance or a score difference. It then zooms in on the kinks, the points where a loss is not
# differentiable, and prints the exact gradient jaxloss returns there next to what the plain `jnp.abs` /
# `jnp.maximum` expression and optax return. It ends with `jax.hessian` of two losses, which works because
# jaxloss's non-smooth primitives are `jax.custom_jvp` rules (forward mode) rather than `custom_vjp`.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxloss as jl

plt.rcParams.update({"figure.dpi": 80, "axes.grid": True, "grid.alpha": 0.3})


def along(f, z):
  """``f(z)`` and ``f'(z)`` at every point of the 1-d grid ``z`` (``f`` maps one number to one loss)."""
  return jax.jit(jax.vmap(jax.value_and_grad(f)))(z)


def plot_family(title, xlabel, z, losses, ylim=None, slope_ylim=None):
  """Loss (left) and derivative (right) of each ``name: f`` in ``losses`` along ``z``."""
  _, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
  for name, f in losses.items():
    value, slope = along(f, z)
    left.plot(z, value, label=name)
    right.plot(z, slope, label=name)
  left.set(title=f"{title}: loss", xlabel=xlabel, ylim=ylim)
  right.set(title=f"{title}: derivative", xlabel=xlabel, ylim=slope_ylim)
  left.legend(fontsize=8)
  plt.tight_layout()
  plt.show()


one = jnp.ones(())  # the target / label of a single example
zero = jnp.zeros(())

# %% [markdown]
# ## Regression: a function of the residual
#
# Each loss is evaluated for one prediction `p` against the target 0, so the x axis is the residual `p - t`.
# The squared error's derivative grows without bound; the absolute error's is `sign(p - t)`; Huber and smooth
# L1 are quadratic near 0 and linear beyond `delta` / `beta`; log-cosh is a smooth absolute error; the
# quantile (pinball) loss at `q = 0.9` charges under-prediction nine times more than over-prediction.

# %%
residual = jnp.linspace(-3, 3, 601)
plot_family(
  "regression",
  "prediction - target",
  residual,
  {
    "mse": lambda p: jl.mse(p, zero),
    "mae": lambda p: jl.mae(p, zero),
    "huber (delta=1)": lambda p: jl.huber(p, zero, delta=1.0),
    "smooth_l1 (beta=0.5)": lambda p: jl.smooth_l1(p, zero, beta=0.5),
    "log_cosh": lambda p: jl.log_cosh(p, zero),
    "quantile (q=0.9)": lambda p: jl.quantile(p, zero, q=0.9),
  },
  ylim=(-0.1, 4),
)

# %% [markdown]
# The likelihood losses take a rate or a variance rather than a residual. Below: `poisson_nll` of the log-rate
# for a count of 3 (minimal at log 3), `gaussian_nll` as a function of the predicted variance for a residual
# of 1 (minimal at variance 1), and `msle` of the prediction for a target of 1.

# %%
grid = jnp.linspace(0.05, 4, 400)
plot_family(
  "likelihoods",
  "log-rate / variance / prediction",
  grid,
  {
    "poisson_nll(log-rate, 3)": lambda r: jl.poisson_nll(r, 3 * one),
    "gaussian_nll(1, 0, variance)": lambda v: jl.gaussian_nll(one, zero, v),
    "msle(p, 1)": lambda p: jl.msle(p, one),
  },
)

# %% [markdown]
# ## Binary classification: a function of the logit of a positive example
#
# The label is positive (`+1` for the margin losses, `1` for the probabilistic ones). Logistic loss
# (`binary_cross_entropy_with_logits`, equal to `soft_margin`) never reaches 0; the hinge is exactly 0 beyond
# the margin 1, with a kink there; the squared hinge is smooth at the margin. The focal loss (here without the
# `alpha` class weighting) is the logistic loss scaled by `(1 - p_t)^gamma`: it all but ignores examples that
# are already well classified, and its gradient vanishes much sooner.

# %%
logit = jnp.linspace(-4, 4, 801)
plot_family(
  "binary classification",
  "logit s (label positive)",
  logit,
  {
    "logistic (bce_with_logits)": lambda s: jl.binary_cross_entropy_with_logits(s, one),
    "bce of sigmoid(s)": lambda s: jl.binary_cross_entropy(jax.nn.sigmoid(s), one),
    "hinge": lambda s: jl.hinge(s, one),
    "squared_hinge": lambda s: jl.squared_hinge(s, one),
    "sigmoid_focal (gamma=2)": lambda s: jl.sigmoid_focal(s, one, alpha=-1.0, gamma=2.0),
  },
  ylim=(-0.1, 5),
  slope_ylim=(-2.5, 0.2),
)

# %% [markdown]
# ## Multi-class classification: a function of the true class's logit
#
# Three classes; the other two logits are fixed at 0 and 0.5 and the true class (0) has logit `z`. The
# Crammer-Singer hinge (`multiclass_hinge`) is 0 once `z` beats the best other logit by 1 (`z = 1.5`); the
# Weston-Watkins `multi_margin` averages a hinge over each other class, so it has two kinks (`z = 1` and
# `z = 1.5`).

# %%
others = jnp.array([0.0, 0.5])
label = jnp.array(0)


def scores(z):
  return jnp.concatenate([z[None], others])


plot_family(
  "multi-class",
  "logit of the true class",
  jnp.linspace(-3, 4, 701),
  {
    "cross_entropy": lambda z: jl.cross_entropy(scores(z), label),
    "cross_entropy (label_smoothing=0.1)": lambda z: jl.cross_entropy(scores(z), label, label_smoothing=0.1),
    "softmax_focal (gamma=2)": lambda z: jl.softmax_focal(scores(z), label),
    "poly_cross_entropy (epsilon=1)": lambda z: jl.poly_cross_entropy(scores(z), label),
    "multiclass_hinge": lambda z: jl.multiclass_hinge(scores(z), label),
    "multi_margin": lambda z: jl.multi_margin(scores(z), label),
  },
  ylim=(-0.1, 5),
)

# %% [markdown]
# ## Metric learning: a function of where an embedding sits
#
# One-dimensional embeddings, so the distance is `|u|`. The contrastive loss of a similar pair is `d²`; of a
# dissimilar pair `max(0, margin - d)²`, pushing the pair apart until `d = margin` (1). The triplet loss has
# its anchor at 0, its positive at 0.5 and its negative at `u`: `max(0, d(a, p) - d(a, n) + 1)`, 0 once the
# negative is 1.5 away. At `u = 0` the distance itself has a kink; jaxloss gives it the gradient 0.

# %%
u = jnp.linspace(-2.5, 2.5, 501)
origin = jnp.zeros(1)
plot_family(
  "metric learning",
  "position u of the second / negative embedding",
  u,
  {
    "contrastive, similar pair": lambda u: jl.contrastive(origin, u[None], one),
    "contrastive, dissimilar pair": lambda u: jl.contrastive(origin, u[None], zero),
    "triplet_margin (positive at 0.5)": lambda u: jl.triplet_margin(origin, origin + 0.5, u[None]),
  },
  ylim=(-0.1, 3),
)

# %% [markdown]
# ## Ranking: a function of the score difference
#
# Two items, the first relevant (label 1) and the second not (label 0), scored `u` and 0. `margin_ranking`
# and `pairwise_hinge` are the same hinge on the difference (margin 1); `pairwise_logistic` (RankNet) is its
# smooth counterpart, and the listwise `softmax_ranking` (ListNet) equals it for a list of two.

# %%
relevance = jnp.array([1.0, 0.0])


def pair(u):
  return jnp.stack([u, jnp.zeros_like(u)])


plot_family(
  "ranking",
  "score of the relevant item - score of the other",
  jnp.linspace(-3, 3, 601),
  {
    "margin_ranking (margin=1)": lambda u: jl.margin_ranking(u, zero, one, margin=1.0),
    "pairwise_hinge": lambda u: jl.pairwise_hinge(pair(u), relevance),
    "pairwise_logistic": lambda u: jl.pairwise_logistic(pair(u), relevance),
    "softmax_ranking": lambda u: jl.softmax_ranking(pair(u), relevance),
  },
)

# %% [markdown]
# ## Divergences: a function of the predicted logit
#
# The target distribution is `p = (0.7, 0.3)` and the prediction `q = softmax(z, 0)`. KL and JS are 0 at
# `z = log(7/3) ≈ 0.85`, where `q = p`. Cross-entropy with the soft target `p` is KL plus the entropy of `p`,
# a constant: the same gradient, shifted up by 0.61.

# %%
target = jnp.array([0.7, 0.3])


def log_q(z):
  return jax.nn.log_softmax(jnp.stack([z, jnp.zeros_like(z)]))


plot_family(
  "divergences",
  "logit z of the first class",
  jnp.linspace(-3, 4, 701),
  {
    "kl_divergence(log q, p)": lambda z: jl.kl_divergence(log_q(z), target),
    "js_divergence(log p, log q)": lambda z: jl.js_divergence(jnp.log(target), log_q(z)),
    "cross_entropy(z, p)": lambda z: jl.cross_entropy(jnp.stack([z, jnp.zeros_like(z)]), target),
  },
)

# %% [markdown]
# ## The kinks, exactly
#
# At a kink the derivative does not exist; an autodiff system still has to return a number. jaxloss returns
# the **minimum-norm subgradient**, which is exactly 0 whenever 0 is a valid subgradient (the loss is at a
# minimum along that direction). The plain expressions do something else: `jnp.abs` returns +1 at 0 and
# `jnp.maximum` splits a tie 0.5 / 0.5, so the hinge gets half its slope at the margin. optax's losses are
# written with those primitives. Each row below is the exact value returned by `jax.grad` at the kink.
# (`+ 0.0` turns a `-0.0` into `0.0` for printing.)


# %%
def grad_at(f, x):
  return np.asarray(jax.grad(f)(jnp.asarray(x, jnp.float32))) + 0.0


def show(gradient):
  return np.array2string(gradient, precision=4, suppress_small=True)


a = jnp.zeros((1, 2))  # an anchor; the positive sits on it
near = jnp.full((1, 2), 0.3)  # a negative close enough that the triplet hinge is active
tied = jnp.array([1.5, 0.5, 0.0])  # true class 0 beats the best other by exactly the margin 1
rows = [
  ("|p - t| at p = t", "jl.mae", grad_at(lambda p: jl.mae(p, zero), 0.0), "jnp.abs", grad_at(jnp.abs, 0.0)),
  (
    "hinge at y*s = 1",
    "jl.hinge",
    grad_at(lambda s: jl.hinge(s, one), 1.0),
    "optax.losses.hinge_loss",
    grad_at(lambda s: optax.losses.hinge_loss(s, one), 1.0),
  ),
  (
    "pinball q=0.9 at p = t",
    "jl.quantile",
    grad_at(lambda p: jl.quantile(p, zero, q=0.9), 0.0),
    "jnp.maximum(q e, (q-1) e)",
    grad_at(lambda p: jnp.maximum(0.9 * -p, -0.1 * -p), 0.0),
  ),
  (
    "margin ranking at the margin",
    "jl.margin_ranking",
    grad_at(lambda x: jl.margin_ranking(x, zero, one, margin=1.0), 1.0),
    "jnp.maximum(0, 1 - x)",
    grad_at(lambda x: jnp.maximum(0.0, 1.0 - x), 1.0),
  ),
  (
    "rmse at zero error",
    "jl.rmse",
    grad_at(lambda p: jl.rmse(p, jnp.zeros(3)), np.zeros(3)),
    "jnp.sqrt(jnp.mean(e**2))",
    grad_at(lambda p: jnp.sqrt(jnp.mean(p**2)), np.zeros(3)),
  ),
  (
    "triplet, positive on the anchor",
    "jl.triplet_margin",
    grad_at(lambda p: jl.triplet_margin(a, p, near), a),
    "optax triplet (eps=0)",
    grad_at(lambda p: optax.losses.triplet_margin_loss(a, p, near, eps=0.0).mean(), a),
  ),
  (
    "Crammer-Singer hinge at the margin",
    "jl.multiclass_hinge",
    grad_at(lambda s: jl.multiclass_hinge(s, label), tied),
    "optax multiclass_hinge_loss",
    grad_at(lambda s: optax.losses.multiclass_hinge_loss(s, label), tied),
  ),
]
print(f"{'kink':36} {'jaxloss':32} {'the plain expression / optax'}")
for kink, ours, ours_grad, theirs, theirs_grad in rows:
  print(f"{kink:36} {ours + ' ' + show(ours_grad):32} {theirs} {show(theirs_grad)}")

# %% [markdown]
# The same numbers come out of forward mode, because each kink is a `jax.custom_jvp` rule: a directional
# derivative at the kink is the same minimum-norm choice, so `jax.jvp`, `jax.jacfwd` and `jax.hessian` agree
# with `jax.grad`.

# %%
for name, f, x in [
  ("jl.mae at p = t", lambda p: jl.mae(p, zero), 0.0),
  ("jl.hinge at y*s = 1", lambda s: jl.hinge(s, one), 1.0),
]:
  _, forward = jax.jvp(f, (jnp.float32(x),), (jnp.float32(1.0),))
  print(f"{name}: jax.jvp gives {float(forward) + 0.0}, jax.grad gives {float(jax.grad(f)(jnp.float32(x))) + 0.0}")

# %% [markdown]
# Zoomed in on the two most common kinks, on a grid that contains the kink exactly: the derivative of the
# absolute error and of the hinge, as jaxloss and as the plain expression return them. Away from the kink
# they agree; at the kink (the marked points) jaxloss returns 0.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
grid = jnp.linspace(-1, 1, 41)  # contains 0 exactly
for ax, (title, ours, plain, x0) in zip(
  axes,
  [
    ("d/dp |p - t| at t = 0", lambda p: jl.mae(p, zero), jnp.abs, 0.0),
    (
      "d/ds hinge(s, +1), shifted so the margin is at 0",
      lambda s: jl.hinge(s + 1, one),
      lambda s: jnp.maximum(0.0, -s),
      0.0,
    ),
  ],
  strict=True,
):
  ax.plot(grid, jax.vmap(jax.grad(ours))(grid), "o", ms=4, label="jaxloss")
  ax.plot(grid, jax.vmap(jax.grad(plain))(grid), "x", ms=6, label="plain jnp")
  ax.plot([x0], [grad_at(ours, x0)], "o", ms=14, mfc="none", mew=2, label=f"jaxloss at the kink: {grad_at(ours, x0)}")
  ax.plot(
    [x0], [grad_at(plain, x0)], "s", ms=14, mfc="none", mew=2, label=f"plain jnp at the kink: {grad_at(plain, x0)}"
  )
  ax.set(title=title, ylim=(-1.3, 1.3))
  ax.legend(fontsize=8, loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Second derivatives with `jax.hessian`
#
# `jax.hessian` is forward-over-reverse differentiation, so it needs forward mode through the whole loss.
# For the Huber loss of 5 predictions (mean reduction), the Hessian is diagonal: `1/5` where the residual is
# inside `delta`, 0 where the loss is linear. For the cross-entropy of one example it is the well-known
# `diag(q) - q qᵀ` with `q = softmax(logits)`: positive semi-definite, with rows summing to 0 (adding a
# constant to every logit changes nothing).

# %%
predictions = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])
print("Huber Hessian (residuals -2, -0.5, 0, 0.5, 2; delta = 1):")
print(jax.jit(jax.hessian(jl.huber))(predictions, jnp.zeros(5)))

logits = jnp.array([2.0, 0.5, -1.0, 0.0])
hessian = jax.jit(jax.hessian(jl.cross_entropy))(logits, jnp.array(0))
q = jax.nn.softmax(logits)
print(
  "\ncross_entropy Hessian vs diag(q) - q q^T, largest difference:",
  float(jnp.abs(hessian - (jnp.diag(q) - jnp.outer(q, q))).max()),
)
print("row sums:", show(hessian.sum(axis=1)), " eigenvalues:", show(jnp.linalg.eigvalsh(hessian)))

fig, ax = plt.subplots(figsize=(4, 3.4))
image = ax.imshow(hessian, cmap="RdBu", vmin=-0.3, vmax=0.3)
ax.set(title="Hessian of cross_entropy in the logits", xticks=range(4), yticks=range(4))
fig.colorbar(image)
plt.show()

# %% [markdown]
# ## What to take away
#
# - Every jaxloss loss is a plain function of arrays: `jax.grad`, `jax.vmap`, `jax.jvp` and `jax.hessian`
#   compose with it, as the plots above do with one `vmap(value_and_grad(...))` per curve.
# - At a kink jaxloss returns the minimum-norm subgradient: exactly 0 where 0 is a valid subgradient, in
#   reverse and forward mode alike. `jnp.abs` gives +1 there, `jnp.maximum` gives half the slope, and a norm at
#   0 gives NaN; optax inherits these from the primitives it is written with.
# - The shapes of the gradients are what matter for training: bounded for MAE, Huber and the hinge (robust to
#   outliers), vanishing early for the focal loss (focus on hard examples), exactly 0 beyond the margin for the
#   hinge family (only the examples that violate it contribute).
