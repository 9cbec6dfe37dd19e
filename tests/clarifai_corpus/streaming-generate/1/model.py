from typing import Iterator

from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_types import Text
from clarifai.runners.utils.data_utils import Param
from clarifai.utils.logging import logger


class StreamingModel(ModelClass):
  """Streams words back one at a time."""

  def load_model(self):
    self.vocabulary = ["alpha", "beta", "gamma", "delta", "epsilon"]
    logger.info("vocabulary loaded")

  @ModelClass.method
  def generate(self,
               prompt: Text,
               max_tokens: int = Param(default=3, description="How many words to stream", min_value=1, max_value=5),
               temperature: float = Param(default=0.7, description="Sampling temperature", min_value=0.0, max_value=2.0)) -> Iterator[Text]:
    """Stream max_tokens words after the prompt."""
    for i in range(max_tokens):
      yield Text(f"{prompt.text} {self.vocabulary[i]}")

  @ModelClass.method
  def count(self, n: int = 3) -> Iterator[int]:
    """Stream the numbers 0..n-1."""
    for i in range(n):
      yield i
