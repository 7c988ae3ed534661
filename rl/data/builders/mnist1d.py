"""TFDS builder for MNIST-1D, generated locally by the `mnist1d` package.

MNIST-1D (Greydanus & Kobak, 2020, https://arxiv.org/abs/2011.14439) is a procedurally generated 1-D analogue
of MNIST: ten hand-designed 12-point templates are padded, translated, scaled, sheared, blurred with correlated
noise and resampled to 40 points. The generator is seeded, so the data set is the same on every machine and
needs no download: this builder calls `mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())` and never the
package's `get_dataset`, which fetches a pickle over the network.
"""
import copy
import functools
import random
from typing import Any, Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

SIGNAL_LENGTH = 40
NUM_CLASSES = 10

_DESCRIPTION = """\
MNIST-1D: a procedurally generated 1-D signal classification data set with 10 classes, built with the
`mnist1d` package's generator (`make_dataset(get_dataset_args())`: 5000 examples, seed 42, the first 80% as
'train' (4000) and the rest as 'test' (1000)). Each 'signal' is 40 float32 samples, normalised by the generator to
zero mean and unit standard deviation over the whole data set. The order of examples is the generator's.
"""

_CITATION = """\
@article{greydanus2020scaling,
  title={Scaling down Deep Learning},
  author={Greydanus, Sam and Kobak, Dmitry},
  journal={arXiv preprint arXiv:2011.14439},
  year={2020}
}
"""


def generate() -> dict[str, Any]:
  """Runs the `mnist1d` generator with its default arguments, leaving the global RNGs untouched.

  `make_dataset` seeds Python's and NumPy's global generators (`set_seed(42)`); their state is saved and
  restored so that building the data set does not change the randomness of the calling program. The generator
  (about 2 s) runs once per process: later calls return a copy of its output, which is the same every time.

  Example:
    >>> data = generate()
    >>> data["x"].shape, data["x_test"].shape, sorted(set(data["y"].tolist()))
    ((4000, 40), (1000, 40), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])

  Returns:
    The generator's dict: 'x' [4000, 40] and 'x_test' [1000, 40] float64 signals, 'y' [4000] and
    'y_test' [1000] integer labels in [0, 10), plus its templates and time axis.
  """
  return copy.deepcopy(_generated())


@functools.cache
def _generated() -> dict[str, Any]:
  # Imported here: the package pulls in matplotlib and requests, which `import rl.data` should not pay for.
  from mnist1d import data as mnist1d_data  # pylint: disable=g-import-not-at-top

  np_state, py_state = np.random.get_state(), random.getstate()
  try:
    return mnist1d_data.make_dataset(mnist1d_data.get_dataset_args())
  finally:
    np.random.set_state(np_state)
    random.setstate(py_state)


class Mnist1d(tfds.core.GeneratorBasedBuilder):
  """MNIST-1D signals ('signal' float32 [40], 'label' in [0, 10)), generated offline."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Generated with mnist1d.data.make_dataset(get_dataset_args())."}

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's default looks the module up through `importlib_resources`, which it only declares as a dependency
    # for Python < 3.9 (tensorflow/datasets#11212); the file path is all it needs.
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=_DESCRIPTION,
        features=tfds.features.FeaturesDict({
            "signal": tfds.features.Tensor(shape=(SIGNAL_LENGTH,), dtype=np.float32),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=("signal", "label"),
        # Keep the generator's order so that example i of a split is row i of its arrays.
        disable_shuffling=True,
        homepage="https://github.com/greydanus/mnist1d",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing is downloaded.
    data = generate()
    return {
        "train": self._generate_examples(data["x"], data["y"]),
        "test": self._generate_examples(data["x_test"], data["y_test"]),
    }

  def _generate_examples(self, signals: np.ndarray, labels: np.ndarray) -> Iterator[tuple[int, dict]]:
    for i, (signal, label) in enumerate(zip(signals, labels)):
      yield i, {"signal": signal.astype(np.float32), "label": int(label)}
