"""TFDS builder for scikit-learn's bundled 8x8 handwritten digits.

The data (UCI "Optical Recognition of Handwritten Digits", test part: 1797 images, 8x8, 17 grey levels) ships
inside scikit-learn (`sklearn.datasets.load_digits`), so this builder needs no network.
"""
from typing import Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 10
SPLIT_SEED = 0
TEST_FRACTION = 0.2
# load_digits counts pixels on a 0..16 scale (number of "on" pixels of a 4x4 block of the 32x32 bitmap).
MAX_LEVEL = 16

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


def to_uint8(levels: np.ndarray) -> np.ndarray:
  """Maps load_digits' grey levels 0..16 to uint8 0..255 by round(level * 255 / 16).

  Example:
    >>> to_uint8(np.array([0, 8, 16]))
    array([  0, 128, 255], dtype=uint8)

  Args:
    levels: array of levels in [0, 16], any shape.

  Returns:
    uint8 array of the same shape.
  """
  return np.round(np.asarray(levels, np.float64) * (255.0 / MAX_LEVEL)).astype(np.uint8)


def split_indices() -> dict[str, np.ndarray]:
  """The fixed stratified 80/20 split of the 1797 examples.

  Example:
    >>> split = split_indices()
    >>> len(split["train"]), len(split["test"])
    (1437, 360)

  Returns:
    {'train': int indices [1437], 'test': int indices [360]} into `load_digits()`'s arrays.
  """
  from sklearn import datasets, model_selection  # pylint: disable=g-import-not-at-top

  labels = datasets.load_digits().target
  train, test = model_selection.train_test_split(
      np.arange(len(labels)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
  return {"train": train, "test": test}


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
        # Keep the split's order so that example i of a split is `split_indices()[split][i]`.
        disable_shuffling=True,
        homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # The data ships with scikit-learn.
    from sklearn import datasets  # pylint: disable=g-import-not-at-top

    digits = datasets.load_digits()
    images = to_uint8(digits.images)[..., None]
    return {name: self._generate_examples(images[idx], digits.target[idx])
            for name, idx in split_indices().items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[int, dict]]:
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image, "label": int(label)}
