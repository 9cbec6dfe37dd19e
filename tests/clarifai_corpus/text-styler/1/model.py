from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_utils import Param


class TextStyler(ModelClass):
  """Restyles text; every setting is a Param with its rules."""

  def load_model(self):
    self.styles = {"plain": str, "upper": str.upper, "title": str.title}

  @ModelClass.method
  def predict(self,
              text: str,
              style: str = Param(default="plain", description="How to style the text", choices=["plain", "upper", "title"]),
              repeat: int = Param(default=1, description="How many times to repeat it", min_value=1, max_value=5),
              temperature: float = Param(default=0.5, description="Unused; kept for the schema", min_value=0.0, max_value=1.0)) -> str:
    """Style the text and repeat it."""
    return " ".join([self.styles[style](text)] * repeat)
