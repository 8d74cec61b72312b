"""DAG parse times next to Airflow's own example and a minimal SageMaker DAG; local end-to-end time.

Prints figures, asserts nothing. Usage:

    .venv/bin/python benchmarks/bench_dags.py --repeat 5           # parse times (`airflow dags report`)
    .venv/bin/python benchmarks/bench_dags.py --e2e                # + `airflow dags test streamguard_training`

Parsed the same way, in the same benchmark run: this bundle's DAG files, Airflow's
`tutorial_taskflow_api.py` (from the installed package) and a minimal one-task
`SageMakerTrainingOperator` DAG written here. Each file sits alone in a temporary DAG folder and is
parsed from cold by its own `airflow dags report` process (the duration Airflow reports: imports
made by the file included); the table shows the median over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

MINIMAL_SAGEMAKER_DAG = '''
import pendulum
from airflow.sdk import dag
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def minimal_sagemaker_training():
    SageMakerTrainingOperator(task_id="train", config={"TrainingJobName": "x"}, wait_for_completion=False)


minimal_sagemaker_training()
'''


def _env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home / "airflow"), "STREAMGUARD_HOME": str(home / "sg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "plugins"),
    })
    env.update(extra)
    return env


def parse_times(repeat: int, backend: str) -> dict[str, float]:
    import airflow

    tutorial = Path(airflow.__file__).parent / "example_dags" / "tutorial_taskflow_api.py"
    samples: dict[str, list[float]] = {}
    files = [*sorted((REPO / "dags").glob("*.py")), tutorial, None]
    with tempfile.TemporaryDirectory(prefix="sg-bench-dags-") as tmp:
        root = Path(tmp)
        env = _env(root, root, STREAMGUARD_BACKEND=backend)
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        for f in files:
            # One folder per file: each `dags report` process parses one file from cold, so no file
            # pays (or saves) the import cost of another.
            name = f.name if f else "minimal_sagemaker_training.py"
            dags = root / name.removesuffix(".py")
            dags.mkdir()
            if f:
                shutil.copy(f, dags / name)
            else:
                (dags / name).write_text(MINIMAL_SAGEMAKER_DAG)
            for _ in range(repeat):
                out = subprocess.run([str(BIN / "airflow"), "dags", "report", "-o", "json"],
                                     env=dict(env, AIRFLOW__CORE__DAGS_FOLDER=str(dags)),
                                     check=True, capture_output=True, text=True).stdout
                for row in json.loads(out[out.index("[{"):]):
                    duration = row["duration"]
                    seconds = duration if isinstance(duration, (int, float)) else _seconds(str(duration))
                    samples.setdefault(name, []).append(seconds)
    return {name: statistics.median(vals) for name, vals in samples.items()}


def _seconds(text: str) -> float:
    """`0:00:00.123456` → 0.123456."""
    h, m, s = text.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def e2e(conf: dict) -> tuple[float, bool]:
    with tempfile.TemporaryDirectory(prefix="sg-bench-e2e-") as tmp:
        root = Path(tmp)
        env = _env(root, REPO / "dags", STREAMGUARD_BACKEND="local")
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        start = time.perf_counter()
        proc = subprocess.run([str(BIN / "airflow"), "dags", "test", "streamguard_training", "-c", json.dumps(conf)],
                              env=env, capture_output=True, text=True)
        return time.perf_counter() - start, proc.returncode == 0 and "state=success" in proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=["local", "sagemaker"], default="local")
    parser.add_argument("--e2e", action="store_true", help="also time the local end-to-end DAG run")
    parser.add_argument("--conf", default="{}", help="JSON params for the end-to-end run")
    args = parser.parse_args()

    times = parse_times(args.repeat, args.backend)
    minimal = times.get("minimal_sagemaker_training.py")
    print(f"DAG parse time, median of {args.repeat} `airflow dags report` runs (backend={args.backend})")
    print(f"{'file':40} {'seconds':>9} {'x minimal':>10}")
    for name, secs in sorted(times.items(), key=lambda kv: kv[1]):
        ratio = f"{secs / minimal:.2f}" if minimal else "-"
        print(f"{name:40} {secs:9.3f} {ratio:>10}")
    if args.e2e:
        wall, ok = e2e(json.loads(args.conf))
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"local end-to-end `airflow dags test streamguard_training`: {wall:.0f} s "
              f"({'success' if ok else 'FAILED'}), peak child RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
