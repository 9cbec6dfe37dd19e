from typing import List

from clarifai.runners.models.model_class import ModelClass
from clarifai.runners.utils.data_types import NamedFields, Text

DocumentMetadata = NamedFields(
author=str,
title=str,
page_count=int,
keywords=List[str]
)
class MyModel(ModelClass):

  @ModelClass.method
  def process_document(
    self,
    content: Text,
    metadata: DocumentMetadata
  ) -> NamedFields(
    summary=Text,
    sentiment=float,
    topics=List[str]):
    """Summarise a document with its metadata"""
    words = content.text.split()
    return NamedFields(
      summary=Text(f"{metadata.title} by {metadata.author}: {' '.join(words[:3])}"),
      sentiment=0.5,
      topics=metadata.keywords[:2],
    )
