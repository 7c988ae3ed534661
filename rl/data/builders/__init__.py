"""TFDS builders for the embedded data sets; importing this package registers them with TFDS.

* `mnist1d`: MNIST-1D signals from the `mnist1d` package's seeded generator.
* `digits`: scikit-learn's bundled 8x8 digits.
"""
from rl.data.builders.digits import Digits
from rl.data.builders.mnist1d import Mnist1d

# Names a TFDS builder can be built from without any download.
EMBEDDED = ("mnist1d", "digits")
