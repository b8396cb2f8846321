"""Engines that run :func:`qudata.pack_dataset`: ``local`` (the reference) and ``ray``.

The local engine is :mod:`qudata.pipeline`, one process streaming the input once.
``engine.name: ray`` (``qudata pack --engine ray``) runs the same pipeline on Ray Data
(:mod:`qudata.engines.ray`, extra ``qudata[ray]``) and writes the same files. Nothing
here imports Ray: it is imported when the Ray engine runs.
"""

__all__: list[str] = []
