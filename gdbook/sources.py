"""Numbers printed by the source documents (``shared/seeds/``) that the book reproduces.

They live here once, so that every chapter that reproduces an experiment checks against the same
values. Each is copied exactly as the source printed it (float32 values, printed by TF1).
"""

import numpy as np

# 000: the tiny linear system solved by gradient descent in graph mode, learning rate
# exponential_decay(0.05, step, 100, 0.9). Per step: the sum of squares of each variable's
# gradient (two variables), and the prediction (both entries of the 1x2 output are equal).
LINEAR_SYSTEM_GRADIENT_SUMS_OF_SQUARES = np.array(
    [
        [320.0, 32.0],
        [64.799995, 6.4799995],
        [13.155804, 1.3155804],
        [2.6777744, 0.26777744],
        [0.5464407, 0.05464407],
        [0.11179476, 0.011179476],
        [0.02293007, 0.002293007],
        [0.0047151307, 0.00047151305],
        [0.0009720302, 9.7203025e-05],
        [0.00020089658, 2.0089657e-05],
        [4.1624262e-05, 4.162426e-06],
    ]
)
LINEAR_SYSTEM_PREDICTIONS = np.array(
    [
        4.0,
        1.8,
        0.81104267,
        0.3659081,
        0.16529378,
        0.07476455,
        0.03386006,
        0.01535437,
        0.00697148,
        0.00316936,
        0.00144264,
    ]
)
