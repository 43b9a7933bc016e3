"""Where reads are intercepted: reader wrappers, the ``open()`` audit hook, a post-import hook.

* **pandas** ``read_csv, read_table, read_parquet, read_json, read_excel, read_feather,
  read_sql, read_sql_query, read_sql_table`` and the other file readers (``read_fwf,
  read_pickle, read_xml, read_html, read_stata, read_sas, read_spss, read_orc, read_hdf``) —
  the ``pandas.<name>`` attributes: decide every target, read, redact the frame when the
  decision says so.
* **polars** ``read_csv, read_csv_batched, read_parquet, read_json, read_ndjson, read_ipc,
  read_excel, read_database, scan_csv, scan_parquet, scan_ndjson, scan_ipc`` and **pyarrow**
  ``pyarrow.csv.read_csv``, ``pyarrow.parquet.read_table``, when installed: allow and deny work;
  a *redact* decision is refused with a message (only pandas frames are redacted).
* **open()**: a ``sys.addaudithook`` hook sees Python-level opens (``open``, ``io.open``,
  ``os.open``, ``pathlib``...). A read-mode open of a file the catalog governs outside a governed
  reader is refused unless the decision is *allow* (or a *justify* with a justification
  given): raw bytes cannot be redacted.

Wrappers are installed when the module is imported — at load time when it already is,
otherwise by a ``sys.meta_path`` finder that patches the module right after its first
import (so ``import pandas as pd; pd.read_csv(...)`` in one cell is already guarded). All of
it is undone on unload, except the audit hook, which Python cannot remove: it is switched off.

Not seen here (see docs/threat-model.md): C/C++/Rust code opening files (pyarrow's and
polars' own I/O — hence their wrappers — sqlite, h5py), subprocesses, ``os.read`` on a
descriptor opened elsewhere, and user code that removes the wrappers.
"""

from __future__ import annotations

import functools
import importlib.abc
import logging
import os
import site
import sys
from collections.abc import Callable
from typing import Any

from ..errors import GuardDenied
from .engines import BrokeredSource
from .guard import Guard, governed, inside
from .report import read_entry, refusal_message

log = logging.getLogger("jupyter_guard.kernel")

ORIGINAL = "__jupyter_guard_original__"

#: pandas reader -> (name of the argument that names what to read, its position)
PANDAS_FILE_READERS = {
    "read_csv": ("filepath_or_buffer", 0),
    "read_table": ("filepath_or_buffer", 0),
    "read_parquet": ("path", 0),
    "read_json": ("path_or_buf", 0),
    "read_excel": ("io", 0),
    "read_feather": ("path", 0),
    # beyond the list: the other pandas readers of files, so their reads are decided
    # (and redacted) here rather than refused by the open() hook or missed (C-level I/O)
    "read_fwf": ("filepath_or_buffer", 0),
    "read_pickle": ("filepath_or_buffer", 0),
    "read_xml": ("path_or_buffer", 0),
    "read_html": ("io", 0),
    "read_stata": ("filepath_or_buffer", 0),
    "read_sas": ("filepath_or_buffer", 0),
    "read_spss": ("path", 0),
    "read_orc": ("path", 0),
    "read_hdf": ("path_or_buf", 0),
}
POLARS_FILE_READERS = {
    name: ("source", 0)
    for name in ("read_csv", "read_csv_batched", "read_parquet", "read_json", "read_ndjson", "read_ipc",
                 "read_excel", "scan_csv", "scan_parquet", "scan_ndjson", "scan_ipc")
}
#: DataFrame writers -> (the argument naming the file, its position after self): a frame made
#: from governed data makes the file it is written to governed as its most sensitive source
PANDAS_FRAME_WRITERS = {
    "to_csv": ("path_or_buf", 0),
    "to_parquet": ("path", 0),
    "to_json": ("path_or_buf", 0),
    "to_excel": ("excel_writer", 0),
    "to_feather": ("path", 0),
    "to_pickle": ("path", 0),
    "to_orc": ("path", 0),
    "to_stata": ("path", 0),
    "to_hdf": ("path_or_buf", 0),
    "to_xml": ("path_or_buffer", 0),
}
#: dask.dataframe readers (lazy frames): decided in the kernel, redacted per partition on the workers
DASK_FILE_READERS = {
    "read_csv": ("urlpath", 0),
    "read_table": ("urlpath", 0),
    "read_fwf": ("urlpath", 0),
    "read_parquet": ("path", 0),
    "read_json": ("url_path", 0),
    "read_orc": ("path", 0),
    "read_hdf": ("pattern", 0),
}
#: pyspark DataFrameReader methods -> the argument naming what to read (after self); parquet and
#: text take any number of paths
SPARK_READERS = {"csv": "path", "json": "path", "orc": "path", "load": "path", "parquet": "*", "text": "*"}
#: `SELECT * FROM csv.`/some/path`` in Spark SQL reads a file, not a table
SPARK_FILE_FORMATS = ("csv", "json", "parquet", "orc", "text", "avro", "binaryfile", "delta")
PYARROW_READERS = {"pyarrow.csv": {"read_csv": ("input_file", 0)}, "pyarrow.parquet": {"read_table": ("source", 0)}}

#: the open() hook never asks about these (documented in docs/admin-guide.md "Kernel guard")
SKIP_SUFFIXES = (".py", ".pyc", ".pyo", ".pyi", ".pyd", ".so", ".dylib", ".pth")
SKIP_DIRS = ("/proc", "/dev", "/sys")


def _arg(args: tuple, kwargs: dict, name: str, pos: int) -> Any:
    return args[pos] if len(args) > pos else kwargs.get(name)


def path_target(value: str) -> str:
    """An absolute spelling of a local path, *without* resolving ``..`` or symlinks.

    ``os.path.abspath`` would collapse ``link/..`` lexically, which can name another file
    than the OS opens; the server resolves the real path (``realpath``) itself.
    """
    value = os.path.expanduser(value)
    return value if os.path.isabs(value) else os.path.join(os.getcwd(), value)


#: readers that also take the document itself as a string, and how such a string starts
LITERAL_STARTS = {"read_json": ("{", "["), "read_html": ("<",), "read_xml": ("<",)}


def targets_of(value: Any, *, literal: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(target, kind) for what a reader is asked to read: paths, URIs, handles, lists of them."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in targets_of(v, literal=literal)]
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if isinstance(value, str):
        if literal and value.lstrip().startswith(literal):
            return []  # the document itself (pandas.read_json('{"a": 1}')), not a path
        if not value or "\n" in value or len(value) > 4096:
            return []
        head = value.split("://", 1)[0].lower() if "://" in value else None
        if value.lower().startswith("file:"):
            return [(value, "path")]  # the server turns file: URIs into paths
        if head is not None:
            return [(value, "uri")]
        return [(path_target(value), "path")]
    name = getattr(value, "name", None)  # an open file handle
    if isinstance(name, (str, bytes, os.PathLike)):
        return targets_of(name)
    return []  # an in-memory buffer: its bytes came from a read that was itself checked


MAX_EXPANDED = 1000  # files a directory or glob target may expand to before the read is refused
_GLOB = ("*", "?", "[")


def expand(targets: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Add the files a directory or glob target reads (partitioned parquet, polars globs).

    The catalog governs files; a reader given a directory or a pattern reads the files below
    or matching it, so each is decided too. Beyond MAX_EXPANDED files the read is refused.
    """
    out = list(targets)
    for target, kind in targets:
        if kind != "path" or target.lower().startswith("file:"):
            continue
        if os.path.isdir(target):
            found = (os.path.join(d, f) for d, _, files in os.walk(target) for f in sorted(files))
        elif any(c in target for c in _GLOB) and not os.path.exists(target):
            import glob

            found = glob.iglob(target, recursive=True)
        else:
            continue
        for n, path in enumerate(found):
            if n >= MAX_EXPANDED:
                raise GuardDenied(
                    f"{target} names more than {MAX_EXPANDED} files, and jupyter_guard checks every file a "
                    "read touches; read a smaller part (a subdirectory or a narrower pattern)."
                )
            if not os.path.isdir(path):
                out.append((path, "path"))
    return out


# -- wrapping ------------------------------------------------------------------------------


class Hooks:
    """Installs and removes every interception point of one Guard."""

    def __init__(self, guard: Guard):
        self.guard = guard
        self.patched: list[tuple[Any, str, Callable]] = []  # (module, attribute, wrapper)
        self.finder: PostImportFinder | None = None
        self.active = False
        self._skip_prefixes: tuple[str, ...] = ()

    # lifecycle

    def install(self) -> None:
        if self.active:
            return
        self.active = True
        self._skip_prefixes = _skip_prefixes(self.guard.shell)
        watch = {"pandas": self.patch_pandas, "polars": self.patch_polars,
                 "pyarrow.csv": self.patch_pyarrow, "pyarrow.parquet": self.patch_pyarrow,
                 "dask.dataframe": self.patch_dask, "pyspark.sql": self.patch_spark}
        for name, patch in watch.items():
            if name in sys.modules:
                patch(sys.modules[name])
        self.finder = PostImportFinder(watch)
        sys.meta_path.insert(0, self.finder)
        install_audit_hook()
        _ACTIVE[0] = self

    def uninstall(self) -> None:
        if not self.active:
            return
        self.active = False
        if _ACTIVE[0] is self:
            _ACTIVE[0] = None
        if self.finder is not None and self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        self.finder = None
        for module, attr, wrapper in reversed(self.patched):
            if getattr(module, attr, None) is wrapper:  # leave alone what user code replaced since
                setattr(module, attr, getattr(wrapper, ORIGINAL))
        self.patched.clear()

    def status(self) -> dict[str, str]:
        out = {}
        for mod in ("pandas", "polars", "pyarrow.csv", "pyarrow.parquet", "dask.dataframe", "pyspark.sql"):
            n = sum(1 for m, _, _ in self.patched
                    if (m.__name__ if isinstance(m, type(sys)) else getattr(m, "__module__", "")).startswith(mod))
            idle = "not imported yet (wrapped on import)" if self.active else "off"
            out[mod] = f"{n} readers wrapped" if n else idle
        return out

    # patching

    def _wrap(self, module: Any, attr: str, make: Callable[[Callable], Callable]) -> None:
        original = getattr(module, attr, None)
        if original is None or getattr(original, ORIGINAL, None) is not None:
            return  # missing in this version, or already wrapped
        wrapper = make(original)
        functools.update_wrapper(wrapper, original)
        setattr(wrapper, ORIGINAL, original)
        setattr(module, attr, wrapper)
        self.patched.append((module, attr, wrapper))

    def _wrap_files(self, module: Any, readers: dict, prefix: str, *, pandas: bool) -> None:
        for name, (arg, pos) in readers.items():
            reader = f"{prefix}.{name}"
            self._wrap(module, name, lambda orig, r=reader, a=arg, p=pos: self._file_reader(orig, r, a, p, pandas))

    def patch_pandas(self, pd: Any) -> None:
        self._wrap_files(pd, PANDAS_FILE_READERS, "pandas", pandas=True)
        for name in ("read_sql", "read_sql_query"):
            self._wrap(pd, name, lambda orig, n=name: self._sql_reader(orig, f"pandas.{n}", "sql", "con", True))
        self._wrap(pd, "read_sql_table", lambda orig: self._sql_reader(orig, "pandas.read_sql_table", None, "con", True))

        frame = getattr(pd, "DataFrame", None)
        if frame is not None:
            for name, (arg, pos) in PANDAS_FRAME_WRITERS.items():
                self._wrap(frame, name, lambda orig, n=name, a=arg, p=pos: self._frame_writer(orig, n, a, p))
            # pandas keeps attrs only when every input has the same: a frame built from two
            # datasets must know both, so these take the union of their inputs' sources
            self._wrap(pd, "concat", lambda orig: _union_sources(orig, _concat_inputs))
            self._wrap(pd, "merge", lambda orig: _union_sources(orig, _pair_inputs))
            self._wrap(frame, "merge", lambda orig: _union_sources(orig, _pair_inputs))
            self._wrap(frame, "join", lambda orig: _union_sources(orig, _pair_inputs))
            # some groupby aggregations (agg('count')) drop attrs: they carry the grouped frame's
            groupby = getattr(getattr(getattr(pd, "core", None), "groupby", None), "generic", None)
            for cls in (getattr(groupby, "DataFrameGroupBy", None), getattr(groupby, "SeriesGroupBy", None)):
                for name in ("agg", "aggregate", "apply", "transform"):
                    if cls is not None:
                        self._wrap(cls, name, lambda orig: _union_sources(orig, _grouped_input))

    def patch_polars(self, pl: Any) -> None:
        self._wrap_files(pl, POLARS_FILE_READERS, "polars", pandas=False)
        self._wrap(pl, "read_database",
                   lambda orig: self._sql_reader(orig, "polars.read_database", "query", "connection", False))

    def patch_dask(self, dd: Any) -> None:
        self._wrap_files(dd, DASK_FILE_READERS, "dask.dataframe", pandas=True)
        frame = getattr(dd, "DataFrame", None)
        if frame is not None:
            for name, arg in (("to_csv", "filename"), ("to_parquet", "path"), ("to_json", "url_path")):
                self._wrap(frame, name, lambda orig, n=name, a=arg: self._partitioned_writer(orig, f"dask.DataFrame.{n}", a))

    def patch_spark(self, module: Any) -> None:
        from pyspark.sql.readwriter import DataFrameReader
        from pyspark.sql.session import SparkSession

        for name, arg in SPARK_READERS.items():
            self._wrap(DataFrameReader, name, lambda orig, n=name, a=arg: self._spark_reader(orig, n, a))
        self._wrap(DataFrameReader, "table", lambda orig: self._spark_table(orig, "pyspark.DataFrameReader.table"))
        self._wrap(SparkSession, "table", lambda orig: self._spark_table(orig, "pyspark.SparkSession.table"))
        self._wrap(SparkSession, "sql", self._spark_sql)
        from pyspark.sql.readwriter import DataFrameWriter

        for name in ("csv", "json", "parquet", "orc", "text", "save"):
            self._wrap(DataFrameWriter, name,
                       lambda orig, n=name: self._partitioned_writer(orig, f"pyspark.DataFrameWriter.{n}", "path"))

    def patch_pyarrow(self, module: Any) -> None:
        self._wrap_files(module, PYARROW_READERS.get(module.__name__, {}), module.__name__, pandas=False)

    # the wrappers

    def _file_reader(self, original: Callable, reader: str, arg: str, pos: int, pandas: bool) -> Callable:
        guard = self.guard

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # IPython shows the user's line, not this frame
            if not self.active or inside():
                return original(*args, **kwargs)
            literal = LITERAL_STARTS.get(reader.rsplit(".", 1)[-1], ())
            asked = targets_of(_arg(args, kwargs, arg, pos), literal=literal)
            with governed():
                targets = expand(asked)
            if not targets:
                return original(*args, **kwargs)
            decisions = guard.decide_all(targets, reader)
            if any(d.get("access") == "brokered" for d in decisions):  # only the guard reads it
                return brokered_read(guard, reader, asked, decisions[:len(asked)], args, kwargs, arg, pos)
            if not pandas:
                _refuse_non_pandas(guard, targets, decisions, reader)
            with governed():
                result = original(*args, **kwargs)
            return guard.apply(result, targets, decisions, reader, kwargs)

        return wrapper

    def _sql_reader(self, original: Callable, reader: str, sql_arg: str | None, con_arg: str,
                    pandas: bool) -> Callable:
        guard = self.guard

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # IPython shows the user's line, not this frame
            if not self.active or inside():
                return original(*args, **kwargs)
            from .sql import describe_connection, sql_tables, table_name

            con = _arg(args, kwargs, con_arg, 1)
            with governed():
                info = describe_connection(con)
                if sql_arg is None:  # read_sql_table(table_name, con, schema=None)
                    lineage = None
                    names = [table_name(_arg(args, kwargs, "table_name", 0), info, kwargs.get("schema"))]
                else:
                    lineage = sql_tables(_arg(args, kwargs, sql_arg, 0), info)
                    names = lineage.targets
            targets = [(n, "table") for n in names]
            if not targets:
                return original(*args, **kwargs)  # reads no table (SELECT 1)
            decisions = guard.decide_all(targets, reader)
            if isinstance(con, BrokeredSource):  # the guard holds the secret and runs the query
                from . import brokered

                sql = _arg(args, kwargs, sql_arg, 0) if sql_arg else f"SELECT * FROM {_arg(args, kwargs, 'table_name', 0)}"
                return guard.apply_brokered(brokered.read_sql(guard, reader, con, str(sql), targets, decisions,
                                                              "pandas" if pandas else "polars"), decisions)
            _refuse_brokered(guard, targets, decisions, reader)
            if not pandas:
                _refuse_non_pandas(guard, targets, decisions, reader)
            with governed():
                result = original(*args, **kwargs)
            return guard.apply(result, targets, decisions, reader, kwargs, lineage)

        return wrapper

    # pyspark: decided in the driver (this kernel), redacted on the executors

    def _spark_reader(self, original: Callable, name: str, arg: str) -> Callable:
        guard, reader = self.guard, f"pyspark.DataFrameReader.{name}"

        def wrapper(spark_reader: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if not self.active or inside():
                return original(spark_reader, *args, **kwargs)
            value = list(args) if arg == "*" else _arg(args, kwargs, arg, 0)
            targets = targets_of(value)
            with governed():
                targets = expand(targets)
            if not targets:
                return original(spark_reader, *args, **kwargs)
            decisions = guard.decide_all(targets, reader)
            _refuse_brokered(guard, targets, decisions, reader)
            with governed():
                result = original(spark_reader, *args, **kwargs)
            return guard.apply(result, targets, decisions, reader, kwargs)

        return wrapper

    def _spark_table(self, original: Callable, reader: str) -> Callable:
        guard = self.guard

        def wrapper(owner: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if not self.active or inside():
                return original(owner, *args, **kwargs)
            from .sql import table_name

            with governed():
                info = _spark_connection(owner)
                targets = [(table_name(_arg(args, kwargs, "tableName", 0), info), "table")]
            decisions = guard.decide_all(targets, reader)
            _refuse_brokered(guard, targets, decisions, reader)
            with governed():
                result = original(owner, *args, **kwargs)
            return guard.apply(result, targets, decisions, reader, kwargs)

        return wrapper

    def _spark_sql(self, original: Callable) -> Callable:
        guard, reader = self.guard, "pyspark.SparkSession.sql"

        def wrapper(session: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if not self.active or inside():
                return original(session, *args, **kwargs)
            from .sql import sql_tables

            query = _arg(args, kwargs, "sqlQuery", 0)
            with governed():
                info = _spark_connection(session)
                lineage = sql_tables(query, info)
                files = _spark_sql_files(lineage)
            targets = [(t, "table") for t in lineage.targets if not _is_file_table(t, info)] + files
            if not targets:
                return original(session, *args, **kwargs)
            decisions = guard.decide_all(targets, reader)
            _refuse_brokered(guard, targets, decisions, reader)
            with governed():
                result = original(session, *args, **kwargs)
            return guard.apply(result, targets, decisions, reader, kwargs, lineage)

        return wrapper

    def _partitioned_writer(self, original: Callable, writer: str, arg: str) -> Callable:
        """Dask's and Spark's writers: the output (a directory, or Dask's ``part-*`` pattern) made
        from governed data is governed as its most sensitive source before anything is written."""
        guard = self.guard

        def wrapper(owner: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if not self.active or inside():
                return original(owner, *args, **kwargs)
            from .guard import sources_of, spark_sources

            spark = writer.startswith("pyspark")
            frame = getattr(owner, "_df", None) if spark else owner
            with governed():
                sources = spark_sources(guard, frame) if spark else sources_of(frame)
            target = _arg(args, kwargs, arg, 0)
            if isinstance(target, os.PathLike):
                target = os.fspath(target)
            if not sources or not isinstance(target, str) or "://" in target:
                return original(owner, *args, **kwargs)
            if kwargs.get("single_file"):
                shape = "file"
            elif any(c in target for c in _GLOB):
                shape = "glob"
            else:
                shape = "dir"  # Dask's to_csv/to_json without '*', to_parquet, every Spark writer
            guard.derive(path_target(target), sources, writer, shape)
            with governed():
                return original(owner, *args, **kwargs)

        return wrapper

    def _frame_writer(self, original: Callable, name: str, arg: str, pos: int) -> Callable:
        guard = self.guard
        writer = f"pandas.DataFrame.{name}"

        def wrapper(frame: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            if not self.active or inside():
                return original(frame, *args, **kwargs)
            from .guard import sources_of

            sources = sources_of(frame)
            target = _arg(args, kwargs, arg, pos)
            if isinstance(target, os.PathLike):
                target = os.fspath(target)
            if not sources or not isinstance(target, str) or "://" in target:
                return original(frame, *args, **kwargs)  # not from governed data, or not a local file
            guard.derive(path_target(target), sources, writer)  # governed before it exists
            with governed():
                return original(frame, *args, **kwargs)

        return wrapper

    # the open() hook

    def on_open(self, args: tuple) -> None:
        if inside():
            return
        try:
            file, mode, flags = args
        except (TypeError, ValueError):
            return
        if isinstance(file, int):
            return  # a descriptor opened earlier (and checked then, if by path)
        if isinstance(flags, int) and (
            flags & os.O_ACCMODE == os.O_WRONLY  # write-only
            or flags & os.O_TRUNC  # emptied on open: nothing left to read
            or (flags & os.O_CREAT and flags & os.O_EXCL)  # a new file (tempfile, mode "x")
        ):
            return  # not a read of existing data
        if isinstance(mode, str) and "r" not in mode and "+" not in mode:
            return
        if isinstance(file, bytes):
            file = os.fsdecode(file)
        if not isinstance(file, str) or not file:
            return
        with governed():  # realpath and the HTTP call may open files themselves
            target = path_target(file)
            real = os.path.realpath(target)
            if real.endswith(SKIP_SUFFIXES) or real.startswith(self._skip_prefixes):
                return
            decision = self.guard.decide(target, "path")
        effect = decision.get("effect")
        if decision.get("permitted") and (effect == "allow" or effect == "justify"):
            if decision.get("dataset"):
                self.guard.report(_open_entry(decision, target))
            return
        if decision.get("permitted") and effect == "redact":
            self.guard.report(_open_entry(decision, target, refused=True))
            raise GuardDenied(
                f"{decision.get('dataset')!r} ({decision.get('label')} data) is redacted before you see it, "
                "and open() hands out raw bytes that cannot be redacted, so this open was refused. "
                "Read it with pandas (for example pd.read_csv(...)) to get the redacted data.",
                decision=decision,
            )
        self.guard.report(_open_entry(decision, target, refused=True))
        raise GuardDenied(refusal_message(decision), decision=decision)


def _union_sources(original: Callable, inputs: Callable[[tuple, dict], tuple[tuple, dict, list]]) -> Callable:
    """``original`` whose result carries the sources of all its input frames."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if inside():
            return original(*args, **kwargs)
        from .guard import sources_of, with_sources

        args, kwargs, frames = inputs(args, kwargs)
        result = original(*args, **kwargs)
        names = sorted({n for f in frames for n in sources_of(f)})
        return with_sources(result, names) if names else result

    return wrapper


def _concat_inputs(args: tuple, kwargs: dict) -> tuple[tuple, dict, list]:
    """pd.concat(objs, ...): objs may be a generator, so it is read once, here, and passed on."""
    objs = _arg(args, kwargs, "objs", 0)
    if isinstance(objs, dict):
        return args, kwargs, list(objs.values())
    if objs is None or hasattr(objs, "attrs") or not hasattr(objs, "__iter__"):
        return args, kwargs, [objs]
    objs = list(objs)
    if args:
        args = (objs, *args[1:])
    else:
        kwargs = {**kwargs, "objs": objs}
    return args, kwargs, objs


def _grouped_input(args: tuple, kwargs: dict) -> tuple[tuple, dict, list]:
    return args, kwargs, [getattr(args[0], "obj", None) if args else None]


def _pair_inputs(args: tuple, kwargs: dict) -> tuple[tuple, dict, list]:
    """pd.merge(left, right) / left.merge(right) / left.join(other): both sides."""
    other = args[1] if len(args) > 1 else kwargs.get("right", kwargs.get("other"))
    others = other if isinstance(other, (list, tuple)) else [other]  # join takes a list of frames too
    return args, kwargs, [args[0] if args else kwargs.get("left"), *others]


def _spark_connection(owner: Any):
    """The Spark session's current catalog and database, as the SQL module names tables."""
    from .sql import Connection

    session = getattr(owner, "sparkSession", None) or getattr(owner, "_spark", None) or owner
    try:
        catalog, database = session.catalog.currentCatalog(), session.catalog.currentDatabase()
    except Exception:  # noqa: BLE001 - an older Spark: its defaults
        catalog, database = "spark_catalog", "default"
    return Connection(catalog, database, "spark")


def _is_file_table(target: str, info: Any) -> bool:
    parts = target.split(".", 2)
    return len(parts) == 3 and parts[1].lower() in SPARK_FILE_FORMATS and parts[0] == info.database


def _spark_sql_files(lineage: Any) -> list[tuple[str, str]]:
    """The files a Spark SQL query reads directly (`FROM csv.`path``), as path targets."""
    from sqlglot import exp

    out = []
    for stmt in lineage.statements:
        for table in stmt.find_all(exp.Table):
            if table.db and table.db.lower() in SPARK_FILE_FORMATS and not table.catalog and table.name:
                out.extend(targets_of(table.name))
    return expand(out)


def brokered_read(guard: Guard, reader: str, asked: list, decisions: list[dict], args: tuple, kwargs: dict,
                  arg: str, pos: int) -> Any:
    """A reader call on brokered data, served by the broker instead of the reader."""
    __tracebackhide__ = True
    from . import brokered

    if reader.startswith(("dask.", "pyspark.")):
        raise GuardDenied(f"{decisions[0].get('dataset')!r} is brokered (only the guard reads it), which {reader} "
                          "cannot be yet; read it with pandas, polars or pyarrow, or jupyter_guard.read().",
                          decision=decisions[0])
    rest = {k: v for k, v in kwargs.items() if k != arg}
    shape = brokered.shape_of(reader, asked[0][0], rest, tuple(args[pos + 1:]) if len(args) > pos else ())
    return guard.apply_brokered(brokered.read(guard, reader, asked, decisions, shape), decisions)


def _refuse_brokered(guard: Guard, targets: list, decisions: list[dict], reader: str) -> None:
    """Readers the broker cannot serve (Spark; SQL on a connection of the kernel's own) refuse
    brokered data: fail closed."""
    for (target, _), d in zip(targets, decisions):
        if d.get("access") == "brokered":
            guard.report(read_entry(d, reader, target, rows=0, effect="deny", note="brokered: not served to this reader"))
            raise GuardDenied(
                f"{d.get('dataset')!r} is brokered: only the guard reads it, and {reader} cannot be served that way "
                "yet. Read its files with pandas, polars or pyarrow, or jupyter_guard.read(), and its tables with "
                "pd.read_sql(sql, con=jupyter_guard.connect(SOURCE)); ask the data steward "
                f"({d.get('ask') or 'see the catalog'}) if you need it another way.", decision=d)


def _open_entry(decision: dict, target: str, refused: bool = False) -> dict:
    return read_entry(decision, "open", target, rows=None, effect="deny" if refused else None)


def _refuse_non_pandas(guard: Guard, targets: list, decisions: list[dict], reader: str) -> None:
    for (target, _), d in zip(targets, decisions):
        if d.get("effect") == "redact":
            guard.report(read_entry(d, reader, target, rows=0, effect="deny", note="redaction needs a pandas reader"))
            raise GuardDenied(
                f"{d.get('dataset')!r} ({d.get('label')} data) must be redacted before you see it, and only "
                f"pandas DataFrames can be redacted, so {reader} was refused. Read it with pandas "
                "(pd.read_csv / pd.read_parquet / pd.read_sql ...) and convert the redacted frame if you need to.",
                decision=d,
            )


def _skip_prefixes(shell: Any) -> tuple[str, ...]:
    """Directories of Python itself, installed packages and IPython/Jupyter's own state."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *SKIP_DIRS}
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except Exception:
        pass
    for getter in (lambda: shell.profile_dir.location, lambda: shell.ipython_dir):
        try:
            dirs.add(getter())
        except Exception:
            pass
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        dirs.add(jupyter_runtime_dir())
    except Exception:
        pass
    # never skip a directory that holds the kernel's working directory or the home directory
    keep = [os.path.realpath(os.getcwd()) + os.sep, os.path.realpath(os.path.expanduser("~")) + os.sep]
    out = set()
    for d in dirs:
        if not d or not isinstance(d, str):
            continue
        real = os.path.realpath(d).rstrip(os.sep) + os.sep
        if any(k.startswith(real) for k in keep) and real not in (p.rstrip(os.sep) + os.sep for p in SKIP_DIRS):
            continue
        out.add(real)
    return tuple(sorted(out))


# -- the audit hook (process-wide, cannot be removed: switched by _ACTIVE) --------------------

_ACTIVE: list[Hooks | None] = [None]
_AUDIT_HOOK_INSTALLED = [False]


def _audit_hook(event: str, args: tuple) -> None:
    if event != "open":
        return
    hooks = _ACTIVE[0]
    if hooks is not None:
        hooks.on_open(args)


def install_audit_hook() -> None:
    if not _AUDIT_HOOK_INSTALLED[0]:
        sys.addaudithook(_audit_hook)
        _AUDIT_HOOK_INSTALLED[0] = True


# -- patch modules right after they are imported ----------------------------------------------


class PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a watched module, lets the other finders find it, then runs
    a callback on the module right after its code has executed."""

    def __init__(self, watch: dict[str, Callable[[Any], None]]):
        self.watch = watch

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        callback = self.watch.get(fullname)
        if callback is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader, callback)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, callback: Callable[[Any], None]):
        self.loader = loader
        self.callback = callback

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # the module keeps its real loader (importlib.resources and friends ask it)
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self.loader
        self.loader.exec_module(module)
        try:
            self.callback(module)
        except Exception:  # a failed patch must not break the import; open() is still watched
            log.exception("jupyter_guard: could not wrap the readers of %s", module.__name__)
