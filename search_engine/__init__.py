"""Evaluators, hardware profiling, strategies, runners (local, Ray), the search loop,
budgets, constraints, resume and the end-to-end pipeline."""
