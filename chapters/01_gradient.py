# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,mystnb,-all
#     default_lexer: ipython3
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-gradient)=
# # What a gradient is
#
# :::{admonition} What you will learn
# :class: tip
# - stub
# :::
#
# The update rule
#
# $$
# \theta_{t+1} = \theta_t - \alpha \nabla f(\theta_t)
# $$ (eq-gradient-update)
#
# is {eq}`eq-gradient-update`, see {cite:t}`cauchy1847`.

# %%
import gdbook

gdbook.setup()

import matplotlib.pyplot as plt
import tensorflow as tf

# %% [markdown]
# A figure.

# %% mystnb={"figure": {"caption": "A line.", "name": "fig-gradient-line"}}
fig, ax = plt.subplots()
ax.plot([1, 2, 3])
plt.show()

# %% [markdown]
# See {numref}`fig-gradient-line`.

# %% tags=["raises-exception"]
x = tf.constant(3.0)
with tf.GradientTape() as tape:
    tape.watch(x)
    y = x * x
tape.gradient(y, x)
with gdbook.expect_error(RuntimeError) as second_call:
    tape.gradient(y, x)

# %%
print(second_call.message)
assert "non-persistent" in second_call.message

# %% [markdown]
# ```{exercise}
# :label: ex-gradient-1
# Question?
# ```
#
# ````{solution} ex-gradient-1
# :class: dropdown
# Answer.
# ````
