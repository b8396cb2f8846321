"""The stage functions of the partitioned plan, written once for every executor.

``scan`` (map 1, per partition), ``mix`` (the mix's survey, per partition), ``write``
(map 2, per partition) and ``commit`` (per format); ``read`` and ``context`` are what
they share, ``account`` what map 2 counts. :mod:`qudata.driver` drives them.
"""

__all__: list[str] = []
