"""Export: splits, shuffling, the dataset card and the report of a packed dataset."""

__all__: list[str] = []
