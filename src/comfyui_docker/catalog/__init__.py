"""The preset catalog: the shipped presets.yaml and the user's, loaded with file:line problems.

schema.py     Preset, FileSpec, Variant, Requirements; the Catalog and its lookups
entries.py    one presets.yaml entry read from its YAML nodes; the file path and URL rules
loader.py     parse a file (libyaml when present), merge the user's over the shipped one
"""

from .loader import load_catalog, load_file, parse_text
from .schema import Catalog, FileSpec, Preset, Problem, Requirements, Variant, human_size, parse_size

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
