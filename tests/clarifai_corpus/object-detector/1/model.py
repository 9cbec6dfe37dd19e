from typing import List

from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_types import Concept, Image, Region


class MyDetector(ModelClass):
  """Finds a cat on the left and a dog on the right of every image."""

  def load_model(self):
    self.threshold = 0.5

  @ModelClass.method
  def predict(self, image: Image) -> List[Region]:
    """Boxes with their concepts"""
    if not image.bytes:
      return []
    return [
      Region(box=[0.1, 0.2, 0.4, 0.8], concepts=[Concept("cat", 0.97)]),
      Region(box=[0.6, 0.3, 0.9, 0.7], concepts=[Concept(name="dog", value=0.92)]),
    ]
