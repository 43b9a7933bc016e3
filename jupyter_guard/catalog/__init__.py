"""The data catalog: sensitivity labels, datasets, locations and column classifications."""

from .loader import load_catalog, read_sections
from .locations import PATH, TABLE, URI
from .model import DEFAULT_LABELS, Catalog, ColumnRule, Contact, Dataset, Label, Location, Resolution, Source

__all__ = [
    "DEFAULT_LABELS",
    "PATH",
    "TABLE",
    "URI",
    "Catalog",
    "ColumnRule",
    "Contact",
    "Dataset",
    "Label",
    "Location",
    "Resolution",
    "Source",
    "load_catalog",
    "read_sections",
]
