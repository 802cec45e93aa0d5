"""The worked example the `vat.metrics` unit tests share (numbers by hand in their comments)."""

import numpy as np

# The worked example used throughout (3 scenes x 3 values, target = column 0).
S_PRE = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
S_POST = np.array([[1.0, 0.5, -1.0], [2.0, 0.0, 1.0], [4.0, 1.0, 0.0]])
# D = S_post - S_pre:
D_HAND = np.array([[1.0, 0.5, -1.0], [1.0, -1.0, 0.0], [2.0, 1.0, -1.0]])
