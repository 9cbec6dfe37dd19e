import hashlib
import os
from typing import List

import yaml
from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_types import Concept, Image


class ImageClassifier(ModelClass):
  """Scores each concept of config.yaml for an image (a stand-in for a real network)."""

  def load_model(self):
    config_path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "config.yaml")
    with open(config_path) as f:
      config = yaml.safe_load(f)
    self.labels = {c["id"]: c["name"] for c in config["concepts"]}

  def _scores(self, data: bytes) -> List[float]:
    digest = hashlib.sha256(data).digest()
    raw = [digest[i] + 1 for i in range(len(self.labels))]
    return [r / sum(raw) for r in raw]

  @ModelClass.method
  def predict(self, image: Image) -> List[Concept]:
    """Concepts of the image, best first"""
    scores = self._scores(image.bytes)
    concepts = [
      Concept(id=concept_id, name=name, value=score)
      for (concept_id, name), score in zip(self.labels.items(), scores)
    ]
    return sorted(concepts, key=lambda c: c.value, reverse=True)
