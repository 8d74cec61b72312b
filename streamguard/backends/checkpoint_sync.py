"""Checkpoint copies of a local job to ``CheckpointConfig.S3Uri``, only of a consistent checkpoint.

Consistent: no file newer than the state JSON the entry writes last, checked before and after a
staging copy, and the JSON uploaded after the weights, so a reader of the URI never sees a state
ahead of its files. The supervisor calls `copy_checkpoints` while training runs and once at the end.

As on SageMaker ("if a checkpoint is deleted in the container, it will also be deleted in the S3
folder"), a file the entry pruned is deleted at the URI too, after the new state JSON is there, so
the URI holds the entry's last few epochs rather than every epoch it ever wrote.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# The entry writes this file last in each checkpoint (training_entry/artifacts.py CHECKPOINT_STATE).
CHECKPOINT_STATE_FILE = "checkpoint.json"

def checkpoint_fingerprint(checkpoint_dir: Path) -> tuple | None:
    """(relative path, size, mtime_ns) of every file, or None when the checkpoint is not consistent.

    Consistent means: no file is newer than the state JSON the entry writes last (a checkpoint
    being written has new weights and an old JSON). A dir without that JSON (another entry, or
    files other than epoch checkpoints) counts as consistent as it is.
    """
    files = sorted(p for p in checkpoint_dir.rglob("*") if p.is_file())
    stats = []
    for p in files:
        try:
            stats.append((p.relative_to(checkpoint_dir).as_posix(), p.stat()))
        except FileNotFoundError:  # renamed or pruned since it was listed: the entry is writing
            return None
    state = next((st for rel, st in stats if rel == CHECKPOINT_STATE_FILE), None)
    if state is not None and any(st.st_mtime_ns > state.st_mtime_ns for _, st in stats):
        return None
    return tuple((rel, st.st_size, st.st_mtime_ns) for rel, st in stats)


def copy_checkpoints(checkpoint_dir: Path, uri: str, staging: Path) -> tuple | None:
    """Copy a consistent checkpoint dir to ``uri``; returns its fingerprint, or None if it was not copied.

    The files are first copied to ``staging`` and the fingerprint re-checked, so what is uploaded
    is one checkpoint even while the entry writes the next one.
    """
    before = checkpoint_fingerprint(checkpoint_dir)
    if not before:  # inconsistent (mid-write) or empty
        return None
    shutil.rmtree(staging, ignore_errors=True)
    try:
        try:
            shutil.copytree(checkpoint_dir, staging)
        except (FileNotFoundError, shutil.Error):  # a file went (an atomic rename) while it was copied
            return None
        if checkpoint_fingerprint(checkpoint_dir) != before:
            return None
        from streamguard.storage import delete, join_uri, list_dir, normalize_uri, upload_dir, upload_file

        # The state JSON goes last, so a reader of ``uri`` never sees a JSON ahead of its weights.
        state = staging / CHECKPOINT_STATE_FILE
        state_bytes = state.read_bytes() if state.is_file() else None
        if state_bytes is not None:
            state.unlink()
        upload_dir(staging, uri)
        if state_bytes is not None:
            state.write_bytes(state_bytes)
            upload_file(str(state), join_uri(uri, CHECKPOINT_STATE_FILE))
        kept = {rel for rel, _, _ in before}
        prefix = normalize_uri(uri).rstrip("/") + "/"
        for listed in list_dir(uri, recursive=True):
            if listed.startswith(prefix) and listed[len(prefix):] not in kept:
                delete(listed)
        return before
    finally:
        # The staging copy is only a consistent snapshot for the upload; leave no second copy behind.
        shutil.rmtree(staging, ignore_errors=True)
