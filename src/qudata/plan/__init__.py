"""The plan of a run: what each stage does to which documents (mixing, for now)."""

__all__: list[str] = []
