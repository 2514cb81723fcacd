"""The results store over Optuna storage, Pareto fronts and hypervolume (pymoo), tables,
reports and plots."""
