from typing import Iterator

from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_utils import Param
from clarifai.utils.logging import logger


class MyModel(ModelClass):
  """A model that carries its own test, for `local-test`."""

  def load_model(self):
    self.greeting = "Hi"

  @ModelClass.method
  def predict(self, name: str, punctuation: str = Param(default="!", choices=["!", "?", "."])) -> str:
    return f"{self.greeting} {name}{punctuation}"

  @ModelClass.method
  def generate(self, name: str, times: int = 2) -> Iterator[str]:
    for i in range(times):
      yield f"{self.greeting} {name} #{i}"

  @ModelClass.method
  def lazy(self, text: str) -> str:
    from clarifai.runners.utils.data_types import Text
    return Text(text).text[::-1]

  def test(self):
    logger.info("Testing predict")
    assert self.predict("Ada") == "Hi Ada!"
    assert self.predict("Ada", punctuation="?") == "Hi Ada?"
    assert list(self.generate("Ada")) == ["Hi Ada #0", "Hi Ada #1"]
    assert self.lazy("abc") == "cba"
