import json
import os

from clarifai.runners.models.model_builder import ModelBuilder
from clarifai.runners.models.model_class import ModelClass
from clarifai.utils.logging import logger


class VocabModel(ModelClass):
  """Looks words up in a vocabulary loaded from the model's checkpoints."""

  def load_model(self):
    model_path = os.path.dirname(os.path.dirname(__file__))
    builder = ModelBuilder(model_path, download_validation_only=True)
    checkpoints = builder.download_checkpoints(stage="runtime")
    with open(os.path.join(checkpoints, "vocab.json")) as f:
      self.vocab = json.load(f)
    logger.info(f"Loaded {len(self.vocab)} words from {checkpoints}")

  @ModelClass.method
  def predict(self, word: str) -> int:
    """The word's id, -1 when unknown"""
    return self.vocab.get(word, -1)
