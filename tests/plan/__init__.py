"""Tests of qudata.plan (a package: test_dedup.py is also a name in tests/quality)."""
