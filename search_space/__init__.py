"""The torch-free core of hynas: search spaces, archs, genomes, features, analytic costs,
objectives, the registry, errors and config loading. Importing it never imports torch."""
from search_space.arch import Arch, LayerArch, StageArch
from search_space.config import ExperimentConfig, load_config, load_space
from search_space.costs import Costs, arch_costs, layer_configs
from search_space.errors import CheckpointError, ConfigError, DataError, HynasError, SearchSpaceError
from search_space.hybrid import HybridSpace
from search_space.objectives import Constraint, Metrics, Objective, parse_objectives
from search_space.protocol import SearchSpace
from search_space.registry import Registry
from search_space.tabular import CellArch, TabularSpace, load_table

__all__ = [
    "Arch", "CellArch", "CheckpointError", "ConfigError", "Constraint", "Costs", "DataError", "ExperimentConfig",
    "HybridSpace", "HynasError", "LayerArch", "Metrics", "Objective", "Registry", "SearchSpace", "SearchSpaceError",
    "StageArch", "TabularSpace", "arch_costs", "layer_configs", "load_config", "load_space", "load_table",
    "parse_objectives",
]
