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

# 002: the course notes' GradientTape descent on (w + 1)^2 from w = 5, learning rate 0.2,
# 40 epochs: the forty lines the program printed, verbatim (each pairs the new w with the
# loss computed at the old one).
TOY_LOSS_PRINTED_LINES = (
    "After 0 epoch,w is 2.600000,loss is 36.000000",
    "After 1 epoch,w is 1.160000,loss is 12.959999",
    "After 2 epoch,w is 0.296000,loss is 4.665599",
    "After 3 epoch,w is -0.222400,loss is 1.679616",
    "After 4 epoch,w is -0.533440,loss is 0.604662",
    "After 5 epoch,w is -0.720064,loss is 0.217678",
    "After 6 epoch,w is -0.832038,loss is 0.078364",
    "After 7 epoch,w is -0.899223,loss is 0.028211",
    "After 8 epoch,w is -0.939534,loss is 0.010156",
    "After 9 epoch,w is -0.963720,loss is 0.003656",
    "After 10 epoch,w is -0.978232,loss is 0.001316",
    "After 11 epoch,w is -0.986939,loss is 0.000474",
    "After 12 epoch,w is -0.992164,loss is 0.000171",
    "After 13 epoch,w is -0.995298,loss is 0.000061",
    "After 14 epoch,w is -0.997179,loss is 0.000022",
    "After 15 epoch,w is -0.998307,loss is 0.000008",
    "After 16 epoch,w is -0.998984,loss is 0.000003",
    "After 17 epoch,w is -0.999391,loss is 0.000001",
    "After 18 epoch,w is -0.999634,loss is 0.000000",
    "After 19 epoch,w is -0.999781,loss is 0.000000",
    "After 20 epoch,w is -0.999868,loss is 0.000000",
    "After 21 epoch,w is -0.999921,loss is 0.000000",
    "After 22 epoch,w is -0.999953,loss is 0.000000",
    "After 23 epoch,w is -0.999972,loss is 0.000000",
    "After 24 epoch,w is -0.999983,loss is 0.000000",
    "After 25 epoch,w is -0.999990,loss is 0.000000",
    "After 26 epoch,w is -0.999994,loss is 0.000000",
    "After 27 epoch,w is -0.999996,loss is 0.000000",
    "After 28 epoch,w is -0.999998,loss is 0.000000",
    "After 29 epoch,w is -0.999999,loss is 0.000000",
    "After 30 epoch,w is -0.999999,loss is 0.000000",
    "After 31 epoch,w is -1.000000,loss is 0.000000",
    "After 32 epoch,w is -1.000000,loss is 0.000000",
    "After 33 epoch,w is -1.000000,loss is 0.000000",
    "After 34 epoch,w is -1.000000,loss is 0.000000",
    "After 35 epoch,w is -1.000000,loss is 0.000000",
    "After 36 epoch,w is -1.000000,loss is 0.000000",
    "After 37 epoch,w is -1.000000,loss is 0.000000",
    "After 38 epoch,w is -1.000000,loss is 0.000000",
    "After 39 epoch,w is -1.000000,loss is 0.000000",
)
