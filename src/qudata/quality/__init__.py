"""Quality control: token counts, scores, duplicates, validation."""

__all__: list[str] = []
