"""Stage 3b, evaluation: tasks (eval/tasks/*.yaml), generation and label likelihoods, predictions files,
scoring (corrected and paper_compat), reports and plots. Never imports `mmaff.train`."""
