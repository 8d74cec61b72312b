"""The retraining DAG's first step: the feedback, validated, deduplicated and labelled.

Writes the labelled records and the quarantine into the run folder and returns, per model,
production metrics and input statistics (`streamguard.feedback`, `streamguard.drift`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from streamguard import settings, storage
from streamguard.pipeline.params import MODEL_NAMES, MODEL_TYPES
from streamguard.pipeline.records import RetrainingConfig, plain, run_uri

log = logging.getLogger(__name__)


def feedback_root() -> str:
    """Where feedback producers write (`streamguard feedback push`): ``<artifact root>/feedback``."""
    return storage.join_uri(settings.artifact_root(), "feedback")


def ingest(config: RetrainingConfig, key: str) -> dict:
    """Validate, dedupe and label the feedback; write labelled records and the quarantine.

    Returns counts, the labelled-records URI and, per model, production metrics and input statistics.
    """
    from streamguard.drift import input_statistics
    from streamguard.feedback import ingest_feedback, production_metrics, quarantine_lines

    source = config.feedback_uri or feedback_root()
    with tempfile.TemporaryDirectory(prefix="sg-feedback-") as tmp:
        if storage.exists(source):
            local = Path(tmp) / "in"
            storage.download(source, str(local))
            batch = ingest_feedback([str(local)])
        else:
            log.info("no feedback at %s yet", source)
            batch = ingest_feedback([])
        out = Path(tmp) / "labelled.jsonl"
        out.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in batch.records))
        labelled_uri = run_uri(key, "feedback", "labelled.jsonl")
        storage.upload_file(str(out), labelled_uri)
        quarantine_uri = run_uri(key, "feedback", "quarantine.jsonl")
        storage.write_text(quarantine_uri, "".join(line + "\n" for line in quarantine_lines(batch)))
    # Graph size is one of the drift statistics: build the graphs with the featurizer the models use.
    graphed = with_graph_sizes(batch.records)
    per_model = {}
    for model_type in MODEL_TYPES:
        name = MODEL_NAMES[model_type]
        mine = [f for f in batch.feedback if name in str(f.model_version) or ":" not in str(f.model_version)]
        metrics = production_metrics(mine)
        stats = input_statistics(graphed, scores=metrics.scores)
        per_model[model_type] = {"production": plain(metrics), "input_stats": stats, "n": len(mine)}
    return {
        "source": source,
        "labelled_uri": labelled_uri,
        "quarantine_uri": quarantine_uri,
        "n_labelled": len(batch.records),
        "n_quarantined": len(batch.quarantined),
        "duplicates": batch.duplicates,
        "counts": dict(batch.counts),
        "per_model": per_model,
    }


def with_graph_sizes(records: list[dict]) -> list[dict]:
    """Copies of `records` with `graph: {"num_nodes": N}` from the shipped featurizer.

    A record the featurizer cannot handle keeps no graph (its size is then not counted) and is
    logged; it never stops the ingest.
    """
    from streamguard.core.graphs import build_graph

    out = []
    failed = 0
    for rec in records:
        item = dict(rec)
        try:
            if not rec.get("language"):
                raise ValueError("language unknown")
            graph = build_graph(rec["code"], rec["language"])
            item["graph"] = {"num_nodes": int(graph["num_nodes"])}
        except Exception as exc:  # noqa: BLE001 - one record must not stop the ingest
            failed += 1
            log.warning("feedback record %s: no graph (%s: %s)", rec.get("id"), type(exc).__name__, exc)
        out.append(item)
    if failed:
        log.warning("%d of %d feedback record(s) have no graph; graph-size drift uses the rest", failed, len(records))
    return out
