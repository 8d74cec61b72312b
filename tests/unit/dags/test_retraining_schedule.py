"""The retraining DAG's schedule, read from the serialized DAG the way the scheduler reads it.

The scheduler never sees the Python DAG object: it loads the serialized DAG, asks its timetable
for the next run (`next_dagrun_info`), evaluates the asset condition with `AssetEvaluator` on the
assets that received events, and caps active runs with `max_active_runs`.
"""

from __future__ import annotations

import pendulum
import pytest

from streamguard.pipeline.params import FEEDBACK_ASSET_NAME
from tests.conftest import REPO


@pytest.fixture(scope="module")
def serialized(airflow_db):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["streamguard_retraining"]))


def _next(timetable, after=None, *, now_catchup=True):
    from airflow.timetables.base import DataInterval, TimeRestriction

    last = DataInterval(after, after) if after is not None else None
    restriction = TimeRestriction(earliest=pendulum.datetime(2026, 1, 1, tz="UTC"), latest=None, catchup=now_catchup)
    return timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)


def test_the_monthly_cron_starts_a_run_at_03_00_utc_on_the_first(serialized):
    first = _next(serialized.timetable)
    assert first.run_after == pendulum.datetime(2026, 1, 1, 3, tz="UTC")
    runs = [first.run_after]
    for _ in range(3):
        runs.append(_next(serialized.timetable, runs[-1]).run_after)
    assert runs == [pendulum.datetime(2026, m, 1, 3, tz="UTC") for m in (1, 2, 3, 4)]


def test_catchup_off_schedules_only_the_latest_month(serialized):
    # catchup=False: a scheduler that starts late runs the latest month once, not every month missed.
    info = _next(serialized.timetable, now_catchup=False)
    now = pendulum.now("UTC")
    assert info.run_after <= now and info.run_after.day == 1 and info.run_after.hour == 3
    assert now - info.run_after < pendulum.duration(days=32)


def test_a_feedback_asset_event_starts_a_run_and_nothing_else_does(serialized):
    from airflow.assets.evaluation import AssetEvaluator
    from airflow.serialization.definitions.assets import SerializedAssetUniqueKey
    from airflow.utils.session import create_session

    condition = serialized.timetable.asset_condition
    feedback = SerializedAssetUniqueKey(name=FEEDBACK_ASSET_NAME, uri=FEEDBACK_ASSET_NAME)
    other = SerializedAssetUniqueKey(name="someone_elses_asset", uri="someone_elses_asset")
    with create_session() as session:
        evaluator = AssetEvaluator(session)
        assert evaluator.run(condition, statuses={feedback: True}) is True
        assert evaluator.run(condition, statuses={other: True}) is False
        assert evaluator.run(condition, statuses={}) is False
    assert serialized.timetable.summary.startswith("Asset or ")


def test_one_active_run_at_a_time(serialized):
    # Two retrainings of one champion would race for promotion.
    assert serialized.max_active_runs == 1
    assert serialized.catchup is False
