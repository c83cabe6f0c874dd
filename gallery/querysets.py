from typing import Self

from django.db import models
from pgvector.django import CosineDistance


class ImageQuerySet(models.QuerySet):
    def embedded(self) -> Self:
        return self.filter(state="embedded", embedding__isnull=False)

    def nearest_to(self, vector) -> Self:
        """Order by cosine distance to ``vector`` (the HNSW index's operator), nearest first.

        The distance is annotated as ``distance``; ``score`` (1 - distance) is what people see.
        Slice the result (ORDER BY ... LIMIT) so PostgreSQL can answer from the HNSW index.
        """
        return self.embedded().annotate(distance=CosineDistance("embedding", vector)).order_by("distance")
