"""Drop-in mirrors of other libraries' loss APIs, built on jaxloss.

``from jaxloss.compat import optax as losses`` replaces ``from optax import losses``.
"""
