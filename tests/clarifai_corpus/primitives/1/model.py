from clarifai.runners.models.model_class import ModelClass


class MyModel(ModelClass):

  @ModelClass.method
  def calculate_bmi(
    self,
    height_cm: float,
    weight_kg: float
  ) -> float:
    """Calculate Body Mass Index"""
    return weight_kg / (height_cm/100) ** 2

  @ModelClass.method
  def is_adult(self, user_age: int = 30, strict: bool = False) -> bool:
    """Whether the age is 18 or more"""
    return user_age > 18 if strict else user_age >= 18

  @ModelClass.method
  def reverse_bytes(self, file_bytes: bytes) -> bytes:
    """Return the bytes reversed"""
    return file_bytes[::-1]

  @ModelClass.method
  def shout(self, prompt: str = "Generate...") -> str:
    """Upper-case the prompt"""
    return prompt.upper()
