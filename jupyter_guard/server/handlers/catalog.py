"""What the catalog says, as far as the user may know: status, listing, badges, resolution."""

from __future__ import annotations

import re

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..._version import __version__
from ...catalog import PATH, TABLE, URI
from ...catalog.folders import governing
from .base import GuardHandler


class StatusHandler(GuardHandler):
    @web.authenticated
    @authorized
    def get(self):
        who = self.principal()
        gov = self.governor.governance
        summary = gov.catalog.summary()
        summary["loaded_at"] = self.guard.loaded_at
        summary["error"] = self.guard.last_catalog_error
        self.finish(
            {
                "version": __version__,
                "user": {**who.to_dict(), "steward": self.guard.is_steward(who)},
                "catalog": summary,
                "audit": {"store": self.governor.audit.store.describe()},
            }
        )


class CatalogHandler(GuardHandler):
    """Datasets and data sources the user may discover, with what they may do with each."""

    @web.authenticated
    @authorized
    def get(self):
        who = self.principal()
        query = self.query_args()
        purpose = query["purpose"] or None  # preview under a purpose
        gov = self.governor.governance  # one snapshot, even if a reload swaps it meanwhile
        visible, effect_of = self.guard.discoverer(who, gov.policy), self.governor.effect_of
        datasets = []
        for ds in gov.catalog.search(query["q"] or ""):
            if visible(ds):
                may = {action: effect_of(who, ds, action, purpose=purpose) for action in ("read", "export", "download")}
                datasets.append({**ds.to_dict(), "may": may})
        sources = []
        for src in gov.catalog.search_sources(query["q"] or ""):
            as_ds = src.as_dataset()
            if visible(as_ds):
                effect = effect_of(who, as_ds, "credential", target=f"source:{src.name}", purpose=purpose)
                sources.append({**src.to_dict(), "may": {"credential": effect}})
        self.finish({
            "datasets": datasets,
            "sources": sources,
            "labels": [label.to_dict() for label in gov.catalog.labels],
            "purposes": self.guard.known_purposes(),
        })


class CatalogLabelsHandler(GuardHandler):
    """Label badges for the file browser: ``{"paths": [...]}`` relative to the server root.

    A path that is a dataset's location gets that dataset (``contains: false``); a folder that
    holds governed data gets the most sensitive dataset below it the user may discover
    (``contains: true``); anything else, or a dataset the user may not discover, gets null.
    """

    @web.authenticated
    @authorized
    async def post(self):
        paths = self.json_body()["paths"]
        who = self.principal()
        gov = self.governor.governance
        visible = self.guard.discoverer(who, gov.policy)

        def badges() -> dict:  # resolving touches the disk (symlinks): off the event loop
            entries = {}
            for path in paths:
                try:
                    found = governing(gov.catalog, path.lstrip("/"), visible)
                except ValueError as e:
                    raise web.HTTPError(400, "path %r: %s", path, e) from e
                entries[path] = _path_label(*found) if found else None
            return entries

        entries = await asyncio.get_running_loop().run_in_executor(None, badges)
        self.finish({"entries": entries, "labels": [label.to_dict() for label in gov.catalog.labels]})


def _path_label(ds, contains: bool) -> dict:
    return {
        "dataset": ds.name, "label": ds.label.name, "rank": ds.label.rank, "color": ds.label.color,
        "description": ds.description, "steward": ds.steward.to_dict() if ds.steward else None,
        "purposes": list(ds.purposes), "contains": contains,
    }


class DerivedHandler(GuardHandler):
    """Stewards: the files governed because they were made from governed data (copies, renames,
    frames written), each with a catalog entry to paste when it should become a dataset of its
    own; DELETE drops one (recorded) once it is in the catalog or found harmless."""

    @web.authenticated
    @authorized
    def get(self):
        self.require_steward()
        catalog = self.governor.catalog
        root = catalog.root_dir.rstrip("/") + "/"
        entries = []
        for path, (name, source) in sorted(self.governor.copies.items()):
            ds = catalog.datasets.get(name)
            if ds is None:
                continue
            where = path[len(root):] if path.startswith(root) else path
            entries.append({"path": path, "dataset": name, "label": ds.label.name, "from": source,
                            "catalog_entry": derived_entry(ds, where)})
        self.finish({"derived": entries})

    @web.authenticated
    @authorized
    async def delete(self):
        who = self.require_steward()
        path = self.governor.catalog.resolve(self.query_args()["path"], "path").target
        if path not in self.governor.copies:
            raise web.HTTPError(404, f"{path} is not a derived file (see GET derived)")
        path, dataset = await self.governor.drop_copy(who, path)
        self.finish({"path": path, "dataset": dataset, "dropped": True})


def derived_entry(ds, where: str) -> str:
    """A datasets.yaml entry for a derived file: its source's label, steward, column rules."""
    import yaml

    stem = re.sub(r"[^a-z0-9_]+", "_", where.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()).strip("_") or "derived"
    entry = {"name": f"{ds.name}_{stem}", "label": ds.label.name,
             "description": f"derived from {ds.name}", "locations": [where]}
    if ds.steward:
        entry["steward"] = str(ds.steward)
    if ds.columns:
        entry["columns"] = {c.column: {"entity": c.entity, "rule": c.rule} for c in ds.columns}
    if ds.purposes:
        entry["purposes"] = list(ds.purposes)
    return yaml.safe_dump([entry], sort_keys=False)


class ResolveHandler(GuardHandler):
    """Which dataset and label govern a path (relative to the server root), URI or table."""

    @web.authenticated
    @authorized
    def get(self):
        args = self.query_args()
        given = [(k, args[k]) for k in (PATH, URI, TABLE) if args.get(k)]
        if len(given) != 1:
            raise web.HTTPError(400, "give exactly one of path=, uri=, table=")
        kind, value = given[0]
        gov = self.governor.governance
        try:
            res = gov.catalog.resolve(value, kind)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from e
        ds = res.dataset
        if ds is not None and not self.guard.discoverer(self.principal(), gov.policy)(ds):
            ds = None  # a dataset the user may not discover is not revealed, as in catalog/labels
        self.finish(
            {
                "kind": res.kind,
                "target": res.target,
                "dataset": ds.name if ds else None,
                "label": ds.label.name if ds else None,
                "steward": str(ds.steward) if ds and ds.steward else None,
                "purposes": list(ds.purposes) if ds else [],
            }
        )
