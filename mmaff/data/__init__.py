"""Stage 1, raw files -> corpus: registry, builder contract (`builder.py`), readers, records, dispositions,
media checks, the build CLI and the dataset card. Imports nothing from encode / train / eval / hub."""
