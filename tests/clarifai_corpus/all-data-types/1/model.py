from typing import List

from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_types import Audio, Concept, Frame, Image, Region, Text, Video


class EveryType(ModelClass):
  """Echoes each of the core types back, changed a little so the round trip shows."""

  @ModelClass.method
  def text(self, text: Text) -> Text:
    return Text(text.text.upper())

  @ModelClass.method
  def image(self, image: Image) -> Image:
    return Image(bytes=image.bytes[::-1])

  @ModelClass.method
  def audio(self, audio: Audio) -> Audio:
    return Audio(bytes=audio.bytes + b"!")

  @ModelClass.method
  def video(self, video: Video) -> Video:
    return Video(bytes=video.bytes * 2)

  @ModelClass.method
  def concept(self, concept: Concept) -> Concept:
    return Concept(concept.name, value=1 - concept.value)

  @ModelClass.method
  def region(self, region: Region) -> Region:
    return Region(box=region.box, concepts=region.concepts + [Concept("checked", 1.0)])

  @ModelClass.method
  def frame(self, frame: Frame) -> Frame:
    return Frame(time=frame.time + 1.0, image=frame.image)

  @ModelClass.method
  def raw(self, data: bytes) -> bytes:
    return data.upper()

  @ModelClass.method
  def images_to_concepts(self, images: List[Image]) -> List[Concept]:
    return [Concept(f"image-{i}", float(len(img.bytes))) for i, img in enumerate(images)]
