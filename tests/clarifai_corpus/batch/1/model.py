from typing import List

from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_types import Image, Text


class TextClassifier(ModelClass):

  def load_model(self):
    self.positive = {"great", "good", "excellent"}
    self.model = lambda text: 1.0 if set(text.lower().split()) & self.positive else 0.0

  @ModelClass.method
  def predict(self, text: Text) -> float:
    """Single text classification (automatically batched)"""
    return self.model(text.text)

  @ModelClass.method
  def predict_images(self, images: List[Image]) -> List[str]:
    """Process multiple images simultaneously"""
    return [f"{len(img.bytes)} bytes" for img in images]
