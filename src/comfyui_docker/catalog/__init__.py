"""The preset catalog: schema, loader with file:line problems, and the shipped presets.yaml."""

from .loader import Catalog, Problem, load_catalog, load_file, parse_text
from .schema import FileSpec, Preset, Requirements, Variant, human_size, parse_size

__all__ = [
    "Catalog",
    "FileSpec",
    "Preset",
    "Problem",
    "Requirements",
    "Variant",
    "human_size",
    "load_catalog",
    "load_file",
    "parse_size",
    "parse_text",
]
