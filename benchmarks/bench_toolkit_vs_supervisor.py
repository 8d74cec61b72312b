"""One tiny training job run by the local backend's supervisor vs by the real SageMaker training toolkit.

Both run the same entry (`training_entry/train_enhanced_models.py`, GNN, 1 epoch, tiny data) from
the same `sourcedir.tar.gz`: once as a local backend job (`streamguard.backends.local`: status
record, channels, metrics, `model.tar.gz`), once through PyPI `sagemaker-training` under
`SAGEMAKER_BASE_DIR` as `tests/unit/training_entry/test_training_toolkit.py` lays it out (its
requirements install runs with `PIP_NO_INDEX`, so it only checks the pins). Prints wall seconds per
run and the medians.

    nice -n 10 .venv/bin/python benchmarks/bench_toolkit_vs_supervisor.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from streamguard.backends.local import LocalTrainingBackend
    from streamguard.jobs.request import LOCAL_REGION, build_training_request
    from streamguard.sourcedir import build_sourcedir_tarball
    from tests.support.entry_data import make_channels
    from tests.unit.training_entry.test_training_toolkit import TINY, run_toolkit

    times: dict[str, list[float]] = {"supervisor": [], "toolkit": []}
    with tempfile.TemporaryDirectory(prefix="sg-bench-tk-") as tmp:
        root = Path(tmp)
        sourcedir, _ = build_sourcedir_tarball(root / "src" / "sourcedir.tar.gz")
        ch = make_channels(root / "data", with_graphs=True)
        hps = {"model-type": "gnn", "epochs": 1, **TINY}
        for n in range(args.runs):
            request = build_training_request(
                job_name=f"sg-bench-{n}", model_type="gnn", channels={k: v.as_uri() for k, v in ch.items()},
                output_uri=(root / "out").as_uri(), source_dir_uri=sourcedir.as_uri(), hyperparameters=hps,
                role_arn="arn:aws:iam::000000000000:role/local", region=LOCAL_REGION, max_runtime_s=600)
            backend = LocalTrainingBackend(root / "jobs")
            t0 = time.perf_counter()
            backend.create_training_job(request)
            status = backend.wait(request["TrainingJobName"], timeout_s=600, poll_s=0.05)
            times["supervisor"].append(time.perf_counter() - t0)
            assert status["TrainingJobStatus"] == "Completed", status.get("FailureReason")

            t0 = time.perf_counter()
            job = run_toolkit(root / f"tk-{n}", request, ch, sourcedir)
            times["toolkit"].append(time.perf_counter() - t0)
            assert job["rc"] == 0, job["log"][-2000:]
            print(f"run {n + 1}: supervisor {times['supervisor'][-1]:.1f} s, toolkit {times['toolkit'][-1]:.1f} s",
                  flush=True)
    sup, tk = statistics.median(times["supervisor"]), statistics.median(times["toolkit"])
    print(f"median of {args.runs}: supervisor {sup:.1f} s (status record, metrics, model.tar.gz included), "
          f"toolkit {tk:.1f} s (entry only: no upload, no status); toolkit - supervisor {tk - sup:+.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
