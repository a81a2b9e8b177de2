"""Stage 2, corpus -> model inputs, shared by training and evaluation: opening a built corpus, reading its
records, loading media and encoding samples under the corpus's budgets. Imports only from `mmaff.data`."""
