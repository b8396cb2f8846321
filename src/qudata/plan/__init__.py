"""The plan of a run, the data its stages share: the job, its partitions and the mix."""

__all__: list[str] = []
