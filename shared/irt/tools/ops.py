"""Operator CLI for published models: list versions, show one, roll back.

::

    python -m irt.ops --bucket BUCKET list
    python -m irt.ops --bucket BUCKET show VERSION
    python -m irt.ops --bucket BUCKET rollback VERSION [--force]
    python -m irt.ops --dir build/local/model_dir list        # a local store

``list`` prints every version with its status (see :class:`irt.store.VersionInfo`):
``serving``, ``published``, ``rejected``, ``unpublished`` (complete, never served:
safe to delete) or ``incomplete`` (a run died mid-upload: safe to delete).
``show`` prints the version's run report and gate metrics, and the address of its
``report.html`` (the model report ``prepare`` writes: open it in a browser).  ``rollback`` points
``LATEST`` at an earlier version after checking that its model loads; it moves
the pointer with the same precondition as ``prepare``, so it cannot silently
overwrite a run publishing at that moment.  ``predict`` instances pick the
change up within ``MODEL_REFRESH_SECONDS``.  A ``rejected`` version needs
``--force``.

Exit status: 0 done, 1 refused (the message says why), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from irt.engine.artifact import load_model
from irt.errors import ModelFormatError, PointerConflictError
from irt.store import ArtifactStore, check_version, describe, parse_document


def _store(args: argparse.Namespace) -> ArtifactStore:
    if args.bucket:
        from irt.store import GCSStore

        return GCSStore(args.bucket, args.prefix)
    from irt.store import LocalStore

    return LocalStore(args.dir, args.prefix)


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return parse_document(raw)
    except ValueError:
        return {"unreadable": True}


def cmd_list(store: ArtifactStore) -> int:
    rows = describe(store)
    if not rows:
        print(f"no versions in {store.location}")
        return 0
    print(f"{'VERSION':<40} {'STATUS':<12} {'DECISION':<9} CREATED")
    for r in rows:
        print(f"{r.version:<40} {r.status:<12} {r.decision or '-':<9} {r.created_at or '-'}")
    return 0


def cmd_show(store: ArtifactStore, version: str) -> int:
    names = store.versions().get(version)
    if names is None:
        print(f"no version {version} in {store.location}", file=sys.stderr)
        return 1
    serving, _ = store.read_pointer()
    doc = {"version": version, "serving": version == serving, "artifacts": names,
           "report_html": report_link(store, version) if "report.html" in names else None,
           "report": _json(store.get(version, "report.json")),
           "metrics": _json(store.get(version, "metrics.json"))}
    print(json.dumps(doc, indent=1))
    return 0


def report_link(store: ArtifactStore, version: str) -> str:
    """Where a person opens the version's ``report.html``: the Cloud Console's authenticated
    download address for a bucket (it opens in the browser of anyone who may read the
    object), a ``file://`` URL for a local store."""
    location = f"{store.location}/{version}/report.html"
    if location.startswith("gs://"):
        return "https://storage.cloud.google.com/" + quote(location[len("gs://"):])
    return Path(location).resolve().as_uri()


def cmd_rollback(store: ArtifactStore, version: str, force: bool) -> int:
    serving, token = store.read_pointer()
    if version == serving:
        print(f"{version} is already serving; nothing to do")
        return 0
    info = {r.version: r for r in describe(store)}.get(version)
    if info is None:
        print(f"refused: no version {version} in {store.location}", file=sys.stderr)
        return 1
    if info.status == "incomplete":
        print(f"refused: {version} is incomplete (no report.json)", file=sys.stderr)
        return 1
    if info.status == "rejected" and not force:
        print(f"refused: {version} was rejected by its checks "
              f"({'; '.join((_json(store.get(version, 'report.json')) or {}).get('reasons', []))})"
              "; add --force to serve it anyway", file=sys.stderr)
        return 1
    raw = store.get(version, "model.json")
    try:
        if raw is None:
            raise ModelFormatError("model.json is missing")
        load_model(raw)
    except ModelFormatError as exc:
        print(f"refused: {version}'s model does not load: {exc}", file=sys.stderr)
        return 1
    try:
        store.move_pointer(version, token)
    except PointerConflictError as exc:
        print(f"refused: LATEST moved while rolling back ({exc}); run list and retry",
              file=sys.stderr)
        return 1
    print(f"LATEST: {serving} -> {version}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m irt.ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bucket", help="Cloud Storage bucket (MODEL_BUCKET)")
    where.add_argument("--dir", help="local model directory (MODEL_DIR)")
    parser.add_argument("--prefix", default="models", help="object prefix (default models)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every version and its status")
    show = sub.add_parser("show", help="a version's report and gate metrics")
    show.add_argument("version")
    rb = sub.add_parser("rollback", help="point LATEST at an earlier version")
    rb.add_argument("version")
    rb.add_argument("--force", action="store_true", help="serve a rejected version anyway")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "version", None) is not None:
        try:
            check_version(args.version)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    store = _store(args)
    if args.command == "list":
        return cmd_list(store)
    if args.command == "show":
        return cmd_show(store, args.version)
    return cmd_rollback(store, args.version, args.force)


if __name__ == "__main__":
    sys.exit(main())
