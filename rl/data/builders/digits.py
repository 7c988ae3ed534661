"""TFDS builder for scikit-learn's bundled 8x8 digits: the arrays of `rl.data.embedded.digits` as a TFDS data set.

The data (UCI "Optical Recognition of Handwritten Digits", test part: 1797 images, 8x8, 17 grey levels) ships
inside scikit-learn (`sklearn.datasets.load_digits`), so this builder needs no network. `rl` itself reads the
digits from memory (`rl.data.embedded`, no TensorFlow); this builder is for whoever wants them through TFDS, and
for the tests of the tf.data path (PNG-encoded images, resized on the host).
"""
from typing import Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from rl.data import embedded

IMAGE_SHAPE = embedded.IMAGE_SHAPE
NUM_CLASSES = embedded.NUM_CLASSES
SPLIT_SEED = embedded.DIGITS_SPLIT_SEED
TEST_FRACTION = embedded.DIGITS_TEST_FRACTION
MAX_LEVEL = embedded.DIGITS_MAX_LEVEL

_DESCRIPTION = f"""\
The 8x8 handwritten digits bundled with scikit-learn (`sklearn.datasets.load_digits`, 1797 images, 10 classes),
split 80/20 with `sklearn.model_selection.train_test_split(test_size={TEST_FRACTION}, random_state={SPLIT_SEED},
stratify=labels)` into 'train' (1437) and 'test' (360). Pixel levels 0..{MAX_LEVEL} are mapped to uint8 by
round(level * 255 / {MAX_LEVEL}), so 0 -> 0 and {MAX_LEVEL} -> 255; images are [8, 8, 1].
"""

_CITATION = """\
@misc{alpaydin1998optical,
  title={Optical Recognition of Handwritten Digits},
  author={Alpaydin, E. and Kaynak, C.},
  year={1998},
  howpublished={UCI Machine Learning Repository},
  doi={10.24432/C50P49}
}
"""


class Digits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8x8 digits as uint8 'image' [8, 8, 1] and 'label' in [0, 10)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "sklearn load_digits, stratified 80/20 split with random_state=0."}

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
            "image": tfds.features.Image(shape=IMAGE_SHAPE, dtype=np.uint8, encoding_format="png"),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=("image", "label"),
        # Keep the split's order so that example i of a split is `embedded.digits_split_indices()[split][i]`.
        disable_shuffling=True,
        homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # The data ships with scikit-learn.
    return {split: self._generate_examples(**embedded.digits(split)) for split in ("train", "test")}

  def _generate_examples(self, x: np.ndarray, label: np.ndarray) -> Iterator[tuple[int, dict]]:
    for i, (image, y) in enumerate(zip(x, label)):
      yield i, {"image": image, "label": int(y)}
