"""Streaming readers and safe writers."""

from qudata.io.readers import RawRecord, read_records
from qudata.io.sources import Source, expand_inputs

__all__ = ["RawRecord", "Source", "expand_inputs", "read_records"]
