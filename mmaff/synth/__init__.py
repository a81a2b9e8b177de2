"""Synthetic multilingual multi-label emotion corpus generation (issue 14): plan, prompts, generation, filters,
report."""
