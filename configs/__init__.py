"""Packaged YAML presets: search spaces (``spaces/``), hardware profiles (``hardware/``) and
experiments (``*.yaml``). Shipped as package data so that ``hynas`` works outside the repo."""
