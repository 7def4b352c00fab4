"""Training, evaluation, export and benchmarks (torch lives only here)."""
