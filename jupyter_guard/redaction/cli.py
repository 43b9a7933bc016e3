"""`jupyter guard scan | redact | classify`: the redaction core on files.

``scan`` finds PII (Presidio) and secrets (detect-secrets: API keys, private keys, passwords in
connection strings, JWTs; entity type ``SECRET:<detector>``) in text files, CSV/TSV cells and
notebooks (``.ipynb``: cell sources and text outputs — streams, text MIME types of results and
displays, error tracebacks with their colour codes removed). A notebook finding's location is
``{"cell": i, "output": j or null, "line": n}`` (cell and output: 0-based indexes into the
notebook's ``cells`` and the cell's ``outputs``; line: 1-based within the source or the
output's text), plus ``"mime"`` for a result's or display's representation.

Exit codes: ``scan`` 0 clean, 1 PII or a secret found, 2 an error (unreadable file, bad
option); ``redact`` and ``classify`` 0 done, 2 an error. Output never contains a matched
value: findings carry offsets, reports carry counts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from pathlib import Path

from .model import RedactionError

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
BATCH = 10_000
#: files at least this big get a progress bar when stderr is a terminal
PROGRESS_BYTES = 4 << 20
#: a column of plain numbers with at most this many integer digits is not scanned by default
#: (ids, counts, amounts: a scan only finds false phone numbers there); longer ones (an SSN or
#: a phone number stored as digits) are
NUMERIC_DIGITS = 6
_NUMBER = re.compile(r"[+-]?\d{1,%d}(?:[.,]\d+)?" % NUMERIC_DIGITS)


def add_subcommands(subparsers) -> None:
    """Register scan, redact and classify on the `jupyter guard` argparse subparsers."""
    scan = subparsers.add_parser("scan", help="find PII and secrets in text, CSV and notebook files (exit 1 when found)")
    scan.add_argument("files", nargs="+", metavar="FILE",
                      help="text files; .csv/.tsv are read as tables, .ipynb as notebooks (sources and text outputs)")
    scan.add_argument("--json", action="store_true", help="a JSON list of findings (offsets, never values)")
    scan.add_argument("--no-secrets", action="store_true", help="PII only: do not look for secrets (detect-secrets)")
    _detector_options(scan)
    scan.set_defaults(func=cmd_scan)

    red = subparsers.add_parser("redact", help="redact a CSV file: PII in every text column, plus column rules")
    red.add_argument("input", metavar="IN.csv")
    red.add_argument("-o", "--output", required=True, metavar="OUT.csv")
    red.add_argument("--rules", default=None,
                     help="YAML with `columns:` as in the catalog (ssn: {entity: US_SSN, rule: mask}); "
                          "the other text columns are still scanned")
    red.add_argument("--no-scan", action="store_true",
                     help="apply the --rules only; do not scan the columns they do not name")
    red.add_argument("--scan-all", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    red.add_argument("--pseudonym-key-file", default=None, help="file holding the key of `hash` rules (>= 16 bytes)")
    red.add_argument("--public-key-file", default=None, help="stewards' RSA public key (PEM) for `encrypt` rules")
    red.add_argument("--chunk-rows", type=int, default=100_000)
    red.add_argument("--json", action="store_true", help="print the report as JSON")
    _detector_options(red)
    red.set_defaults(func=cmd_redact)

    cls = subparsers.add_parser("classify", help="propose column classifications; prints a catalog entry to paste")
    cls.add_argument("file", metavar="FILE.csv")
    cls.add_argument("--name", default=None, help="dataset name (default: the file name)")
    cls.add_argument("--sample-rows", type=int, default=200)
    cls.add_argument("--steward", default=None, help="'Name <email>' to fill in (otherwise left for you to fill)")
    cls.add_argument("--label", default="confidential")
    _detector_options(cls, entities=False, progress=False)  # classify reads a sample: quick
    cls.set_defaults(func=cmd_classify)


def _detector_options(p, entities: bool = True, progress: bool = True) -> None:
    p.add_argument("--ner-model", default=None, metavar="NAME",
                   help="installed spaCy model for PERSON/LOCATION/NRP (e.g. en_core_web_sm); default: "
                        "$JUPYTER_GUARD_NER_MODEL, else c.GuardApp.ner_model of your Jupyter config, else patterns only")
    if progress:
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help=f"a progress bar on stderr (default: on a terminal, for files over {PROGRESS_BYTES >> 20} MB)")
    if entities:
        p.add_argument("--entities", default=None, metavar="A,B",
                       help="only these entities (e.g. US_SSN,EMAIL_ADDRESS; SECRET for secrets in `scan`)")
    p.add_argument("--recognizers", default=None, metavar="YAML", help="a Presidio recognizer-registry YAML")


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def configured_ner_model() -> str | None:
    """The NER model the server would use: $JUPYTER_GUARD_NER_MODEL, else ``c.GuardApp.ner_model``
    from the Jupyter config files (jupyter_server_config.py/.json on the config path)."""
    if os.environ.get("JUPYTER_GUARD_NER_MODEL"):
        return os.environ["JUPYTER_GUARD_NER_MODEL"]
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config.loader import ConfigFileNotFound, JSONFileConfigLoader, PyFileConfigLoader

    found = None
    for directory in reversed(jupyter_config_path()):  # later (more user-specific) files win
        for loader in (JSONFileConfigLoader("jupyter_server_config.json", directory),
                       PyFileConfigLoader("jupyter_server_config.py", directory)):
            try:
                config = loader.load_config()
            except ConfigFileNotFound:
                continue
            except Exception as e:  # a broken config file: say so, never guess
                print(f"warning: could not read {loader.full_filename}: {e}", file=sys.stderr)
                continue
            value = config.get("GuardApp", {}).get("ner_model")
            if isinstance(value, str) and value:
                found = value
    return found


def _progress(args, path: Path, total: int, unit: str):
    """A tqdm bar on stderr, or None: asked with --progress, or a big file on a terminal."""
    want = args.progress
    if want is None:
        try:
            want = sys.stderr.isatty() and path.stat().st_size >= PROGRESS_BYTES
        except OSError:
            want = False
    if not want:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, desc=path.name, file=sys.stderr, leave=False)


def _detector(args):
    from .detector import Detector

    entities = [e.strip() for e in args.entities.split(",") if e.strip()] if getattr(args, "entities", None) else None
    if args.ner_model is None:
        args.ner_model = configured_ner_model()
    det = Detector(ner_model=args.ner_model, entities=entities, recognizers_yaml=args.recognizers)
    if entities:
        unknown = sorted(set(entities) - det.supported_entities)
        if unknown:
            hint = " (PERSON/LOCATION/NRP need --ner-model)" if set(unknown) & {"PERSON", "LOCATION", "NRP"} else ""
            print(f"warning: not detectable here, ignored: {', '.join(unknown)}{hint}", file=sys.stderr)
    return det


# -- scan ------------------------------------------------------------------------------------


def _text_cells(path: Path):
    with open(path, encoding="utf-8", newline="") as f:
        for n, line in enumerate(f, 1):
            yield {"line": n}, line.rstrip("\r\n")


def _csv_cells(path: Path):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=CSV_SUFFIXES[path.suffix.lower()])
        header = next(reader, None)
        if header is None:
            return
        for row_no, row in enumerate(reader, 1):
            for i, cell in enumerate(row):
                if cell:
                    col = header[i] if i < len(header) else f"column_{i + 1}"
                    yield {"row": row_no, "column": col}, cell


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
TEXT_MIME = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json",
             "application/javascript")


class NotebookError(ValueError):
    pass


def _joined(value) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _lines(text: str, loc: dict):
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield {**loc, "line": n}, line


def _notebook_cells(path: Path):
    """(location, line) for every line of every cell's source and text outputs."""
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except json.JSONDecodeError as e:
        raise NotebookError(f"not a notebook (JSON error at line {e.lineno}, column {e.colno})") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise NotebookError("not a notebook (no `cells` list)")
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            continue
        yield from _lines(_joined(cell.get("source")), {"cell": i, "output": None})
        outputs = cell.get("outputs")
        for j, out in enumerate(outputs if isinstance(outputs, list) else ()):
            if not isinstance(out, dict):
                continue
            kind = out.get("output_type")
            if kind == "stream":
                yield from _lines(_joined(out.get("text")), {"cell": i, "output": j})
            elif kind == "error":
                tb = out.get("traceback")
                text = "\n".join(_joined(t) for t in tb) if isinstance(tb, list) and tb else \
                    f"{out.get('ename', '')}: {out.get('evalue', '')}"
                yield from _lines(_ANSI.sub("", text), {"cell": i, "output": j})
            elif kind in ("execute_result", "display_data", "update_display_data"):
                data = out.get("data") if isinstance(out.get("data"), dict) else {}
                for mime, value in data.items():
                    if mime in TEXT_MIME or (mime.startswith("text/") and mime != "text/uri-list"):
                        text = json.dumps(value, indent=1) if not isinstance(value, (str, list)) else _joined(value)
                        yield from _lines(text, {"cell": i, "output": j, "mime": mime})


def _cells_of(path: Path):
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _csv_cells(path)
    if suffix == ".ipynb":
        return _notebook_cells(path)
    return _text_cells(path)


def scan_file(detector, path: Path, secrets=None, progress=None):
    """Yield finding dicts of one file (in batches, so memory stays flat on big files).

    ``detector`` finds PII (None: no PII scan); ``secrets`` a
    :class:`jupyter_guard.scan_secrets.SecretScanner` (None: no secret scan); ``progress`` a
    tqdm bar counting characters scanned (its total the file's size).
    """
    cells = _cells_of(path)
    batch: list = []

    def flush():
        if progress is not None:
            progress.update(sum(len(text) + 1 for _, text in batch))
        texts = [text for _, text in batch]
        found = detector.analyze_many(texts) if detector is not None else [[] for _ in batch]
        for (loc, text), fs in zip(batch, found):
            hits = [{"file": str(path), "location": loc, "entity_type": f.entity_type, "start": f.start,
                     "end": f.end, "score": round(f.score, 4)} for f in fs]
            if secrets is not None:
                hits += [{"file": str(path), "location": loc, "entity_type": f.entity_type, "start": f.start,
                          "end": f.end, "score": 1.0} for f in secrets.find(text)]
                hits.sort(key=lambda h: (h["start"], h["end"], h["entity_type"]))
            yield from hits
        batch.clear()

    for cell in cells:
        batch.append(cell)
        if len(batch) >= BATCH:
            yield from flush()
    yield from flush()


def _what_to_scan(args) -> tuple[bool, bool]:
    """(PII, secrets): ``--entities`` naming SECRET (or SECRET:...) asks for secrets."""
    if not args.entities:
        return True, not args.no_secrets
    names = [e.strip() for e in args.entities.split(",") if e.strip()]
    secret = [e for e in names if e.upper() == "SECRET" or e.upper().startswith("SECRET:")]
    pii = [e for e in names if e not in secret]
    args.entities = ",".join(pii) if pii else None
    return bool(pii), bool(secret) and not args.no_secrets


def cmd_scan(args) -> int:
    pii, want_secrets = _what_to_scan(args)
    try:
        det = _detector(args) if pii else None
    except RedactionError as e:
        _err(str(e))
        return 2
    scanner = None
    if want_secrets:
        from ..scan_secrets import SecretScanner

        scanner = SecretScanner().__enter__()
    findings, errors = [], 0
    try:
        errors = _scan_all(args, det, scanner, findings)
    except RedactionError as e:  # e.g. a configured model that is not installed (loaded on first use)
        _err(str(e))
        return 2
    finally:
        if scanner is not None:
            scanner.__exit__(None, None, None)
    if args.json:
        print(json.dumps(findings, indent=1))
    else:
        for f in findings:
            loc = f["location"]
            if "cell" in loc:
                where = f"cell {loc['cell']}" + (f", output {loc['output']}" if loc["output"] is not None else "") \
                    + (f" ({loc['mime']})" if loc.get("mime") else "") + f", line {loc['line']}"
            elif "line" in loc:
                where = f"line {loc['line']}"
            else:
                where = f"row {loc['row']}, column {loc['column']}"
            print(f"{f['file']}: {where}, chars {f['start']}-{f['end']}: {f['entity_type']} (score {f['score']:.2f})")
        files = len(args.files) - errors
        print(f"{len(findings)} finding(s) in {files} file(s)" + (f"; {errors} file(s) unreadable" if errors else ""),
              file=sys.stderr)
    if errors:
        return 2
    return 1 if findings else 0


def _scan_all(args, det, scanner, findings: list) -> int:
    errors = 0
    for name in args.files:
        path = Path(name)
        try:
            if not path.is_file():
                raise OSError(f"no such file: {name}" if not path.exists() else f"not a file: {name}")
            bar = _progress(args, path, path.stat().st_size, "B")
            try:
                findings.extend(scan_file(det, path, scanner, bar))
            finally:
                if bar is not None:
                    bar.close()
        except NotebookError as e:
            _err(f"cannot read {name}: {e}")
            errors += 1
        except UnicodeDecodeError:
            _err(f"cannot read {name}: not UTF-8 text")
            errors += 1
        except OSError as e:
            _err(f"cannot read {name}: {e.strerror or e}" if getattr(e, "strerror", None) else f"cannot read {name}: {e}")
            errors += 1
        except csv.Error as e:
            _err(f"cannot read {name}: {e}")
            errors += 1
    return errors


# -- redact ----------------------------------------------------------------------------------


def load_rules(path: str) -> list[dict]:
    """`columns:` from a rules YAML, or from the only dataset of a catalog datasets file."""
    import yaml

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if isinstance(data, dict) and "columns" not in data and isinstance(data.get("datasets"), list) \
            and len(data["datasets"]) == 1:
        data = data["datasets"][0]
    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
        raise RedactionError(f"{path}: expected `columns:` mapping column -> {{entity, rule}}")
    rules = []
    for col, spec in data["columns"].items():
        if isinstance(spec, str):
            spec = {"entity": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("entity"), str):
            raise RedactionError(f"{path}: column {col!r}: expected {{entity: NAME, rule: RULE}}")
        rules.append({"name": str(col), "entity": spec["entity"], "rule": spec.get("rule")})
    return rules


def _read_key(path: str | None) -> bytes | None:
    if not path:
        return None
    return Path(path).read_bytes().strip()


def cmd_redact(args) -> int:
    import pandas as pd

    from .frame import Redactor

    if args.no_scan and not args.rules:
        _err("--no-scan needs --rules FILE: otherwise nothing would be redacted")
        return 2
    try:
        rules = load_rules(args.rules) if args.rules else []
        sep = CSV_SUFFIXES.get(Path(args.input).suffix.lower(), ",")
        df = pd.read_csv(args.input, dtype=str, keep_default_na=False, na_values=[""], sep=sep)
        if not args.no_scan:  # every text column no rule names is scanned for PII
            named = {r["name"] for r in rules}
            rules += [{"name": str(c), "entity": "FREE_TEXT", "rule": "scan"} for c in df.columns
                      if str(c) not in named and not _short_numbers(df[c])]
        public = Path(args.public_key_file).read_bytes() if args.public_key_file else None
        scanned = [r for r in rules if (r.get("rule") or ("scan" if r["entity"] == "FREE_TEXT" else "mask")) == "scan"]
        det = _detector(args) if scanned else None
        red = Redactor(det, pseudonym_key=_read_key(args.pseudonym_key_file), public_key_pem=public)
        bar = _progress(args, Path(args.input), len(df) * len(scanned), "cells") if scanned else None
        if bar is not None:
            red.on_progress = bar.update
        try:
            out, report = red.redact_frame(df, rules, chunk_rows=args.chunk_rows)
        finally:
            if bar is not None:
                bar.close()
        out_sep = CSV_SUFFIXES.get(Path(args.output).suffix.lower(), ",")
        out.to_csv(args.output, index=False, sep=out_sep)
    except (OSError, RedactionError, ValueError, pd.errors.ParserError) as e:
        _err(str(e))
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, sort_keys=True))
        return 0
    print(f"wrote {args.output}: {report.rows} rows, {report.cells} cells redacted")
    for col, rule in report.columns.items():
        print(f"  {col}: {rule}")
    if report.entity_counts:
        print("entities: " + ", ".join(f"{e} {n}" for e, n in sorted(report.entity_counts.items())))
    if report.missing_columns:
        print("not in the file (ignored): " + ", ".join(report.missing_columns))
    for key_id, wrapped in report.wrapped_keys.items():
        print(f"wrapped key {key_id} (keep it for stewards; useless without their private key): {wrapped}")
    return 0


def _short_numbers(series) -> bool:
    """Every value a plain number of at most NUMERIC_DIGITS integer digits (ids, counts, amounts)."""
    values = series.dropna()
    return len(values) > 0 and bool(values.astype(str).str.fullmatch(_NUMBER).all())


# -- classify --------------------------------------------------------------------------------


def cmd_classify(args) -> int:
    import pandas as pd

    from .classify import catalog_entry, classify_frame

    path = Path(args.file)
    try:
        sep = CSV_SUFFIXES.get(path.suffix.lower(), ",")
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], sep=sep, nrows=max(args.sample_rows * 50, 10_000))
        args.entities = None
        det = _detector(args)
        proposal = classify_frame(df, sample_rows=args.sample_rows, detector=det)
    except (OSError, RedactionError, ValueError, pd.errors.ParserError) as e:
        _err(f"cannot classify {args.file}: {e}")
        return 2
    print(catalog_entry(args.name or path.stem, str(path), proposal, label=args.label, steward=args.steward,
                        sample_rows=args.sample_rows), end="")
    return 0
