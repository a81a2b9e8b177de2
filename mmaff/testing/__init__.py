"""Fixtures for tests and smoke runs (not used by the pipeline): the tiny offline Qwen2.5-VL."""
