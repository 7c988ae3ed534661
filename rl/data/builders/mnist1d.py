"""TFDS builder for MNIST-1D: the arrays of `rl.data.embedded.mnist1d`, written as a TFDS data set.

`rl` itself reads MNIST-1D from memory (`rl.data.embedded`, no TensorFlow); this builder is for whoever wants it
through TFDS (`tfds.load('mnist1d')` after `import rl.data.builders`), and for the tests of the tf.data path. It
calls the `mnist1d` package's generator and never its `get_dataset`, which fetches a pickle over the network.
"""
from typing import Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from rl.data import embedded

SIGNAL_LENGTH = embedded.SIGNAL_LENGTH
NUM_CLASSES = embedded.NUM_CLASSES

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
    return {split: self._generate_examples(**embedded.mnist1d(split)) for split in ("train", "test")}

  def _generate_examples(self, x: np.ndarray, label: np.ndarray) -> Iterator[tuple[int, dict]]:
    for i, (signal, y) in enumerate(zip(x, label)):
      yield i, {"signal": signal, "label": int(y)}
