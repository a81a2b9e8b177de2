"""The seeds' own model families as recipes, trained on the same corpus and scored by the same scorer (issue 15):
encoder classifiers (`encoder.py`: multi-label, single-label, regression and two-head joint heads) and seq2seq span
prediction. Both write the files `mmaff.score` reads (`outputs.py`). Only `mmaff.cli` imports this package."""
