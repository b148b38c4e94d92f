"""An evidence directory: files written once, with a ``SHA256SUMS`` manifest.

The manifest has the format of ``sha256sum`` (``<hex>  <file>``), so anyone can check the
directory later with ``sha256sum -c SHA256SUMS`` and no mlsgw. Files are created exclusively:
evidence is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlsgw.errors import EvidenceError

MANIFEST = "SHA256SUMS"


@dataclass(frozen=True)
class Evidence:
    """What was written: the directory, each file's sha256, and the manifest's own."""

    directory: Path
    files: Mapping[str, str]
    manifest_sha256: str


def json_lines(items: Iterable[Mapping[str, object]]) -> bytes:
    """One JSON object per line, keys sorted (stable bytes for the hashes)."""
    return b"".join(
        json.dumps(item, sort_keys=True, default=str).encode() + b"\n" for item in items
    )


def write_evidence(directory: Path, files: Mapping[str, bytes]) -> Evidence:
    """Create ``directory`` (it must not exist yet), write ``files`` and the manifest."""
    try:
        directory.mkdir(parents=True, exist_ok=False)
        digests: dict[str, str] = {}
        for name, data in files.items():
            with open(directory / name, "xb") as handle:
                handle.write(data)
            digests[name] = hashlib.sha256(data).hexdigest()
        manifest = "".join(f"{digest}  {name}\n" for name, digest in digests.items()).encode()
        with open(directory / MANIFEST, "xb") as handle:
            handle.write(manifest)
    except OSError as exc:
        raise EvidenceError(f"cannot write the evidence directory {directory}: {exc}") from exc
    return Evidence(directory, digests, hashlib.sha256(manifest).hexdigest())
