"""Surrogate models on encoded arch vectors (ridge, GP, MLP ensemble, auto), the latency
lookup-table model, and ranking metrics (Kendall tau, Spearman, MAPE)."""
