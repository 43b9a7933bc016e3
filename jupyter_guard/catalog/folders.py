"""Which folders hold governed data, for the file browser's label badges.

A folder that no dataset location governs may still hold governed files: a dataset located
at ``data/patients.csv`` or ``data/visits/*.csv`` lies below ``data/`` (and ``data/visits/``).
:func:`build_folder_index` maps every such folder under the server root to the datasets
below it, most sensitive first, once per loaded catalog (:meth:`Catalog.folders` keeps it);
:func:`governing` then answers one path with one resolve and one dictionary lookup.

A glob counts from its literal directory: ``data/*/x.csv`` lies below ``data/`` but no
deeper folder is claimed, since which ones match is only known file by file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from .locations import _GLOB_CHARS, PATH, has_glob


def build_folder_index(datasets: Iterable, root_dir: str) -> dict[str, tuple]:
    """Folder -> datasets with a path location below it (most sensitive first, then by name)."""
    root = os.path.realpath(root_dir).rstrip("/") or "/"
    below: dict[str, dict[str, object]] = {}
    for ds in datasets:
        for loc in ds.locations:
            if loc.kind != PATH:
                continue
            head = _GLOB_CHARS.split(loc.pattern, 1)[0] if has_glob(loc.pattern) else loc.pattern
            folder = head.rsplit("/", 1)[0] or "/"  # the parent of a file, the literal dir of a glob
            while _under(folder, root):
                below.setdefault(folder, {})[ds.name] = ds
                if folder == root:
                    break
                folder = folder.rsplit("/", 1)[0] or "/"
    return {
        folder: tuple(sorted(found.values(), key=lambda d: (-d.label.rank, d.name)))
        for folder, found in below.items()
    }


def _under(folder: str, root: str) -> bool:
    return root == "/" or folder == root or folder.startswith(root + "/")


def governing(catalog, path: str, visible: Callable) -> tuple | None:
    """(dataset, contains) for one path relative to the server root, or None if ungoverned.

    ``contains`` is False when the path itself is a location of the dataset, True for a folder
    holding governed data (the most sensitive dataset below it that ``visible`` admits).
    A path whose own dataset is not visible is None: what is hidden stays hidden.
    """
    res = catalog.resolve(path, PATH)
    if res.dataset is not None:
        return (res.dataset, False) if visible(res.dataset) else None
    for ds in catalog.folders().get(res.target, ()):
        if visible(ds):
            return ds, True
    return None
