"""A/B: deterministic assignment, sample size, z-test decisions, endpoint config vs botocore."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from streamguard.ab import (
    analyze_ab,
    assign_variant,
    endpoint_plan,
    min_sample_size,
    normalize_weights,
    sagemaker_model_name,
    two_proportion_ztest,
)

WEIGHTS = {"champion": 0.9, "challenger": 0.1}


def test_assignment_is_stable_across_calls_and_processes():
    ids = [f"req-{i}" for i in range(50)]
    here = [assign_variant(i, WEIGHTS) for i in ids]
    assert here == [assign_variant(i, dict(reversed(WEIGHTS.items()))) for i in ids]  # dict order irrelevant
    code = ("import sys; from streamguard.ab import assign_variant; "
            "print(','.join(assign_variant(f'req-{i}', {'champion': 0.9, 'challenger': 0.1}) for i in range(50)))")
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip().split(",") == here


def test_weights_respected_over_20k_ids():
    counts = Counter(assign_variant(f"user-{i}", WEIGHTS) for i in range(20_000))
    # Binomial sd for 2,000 expected is 42: allow 4 sd.
    assert abs(counts["challenger"] - 2000) < 170
    three = Counter(assign_variant(str(i), {"a": 1, "b": 1, "c": 2}) for i in range(20_000))
    assert abs(three["c"] - 10_000) < 300 and abs(three["a"] - 5000) < 260


def test_salt_changes_the_split_and_weights_are_validated():
    ids = [str(i) for i in range(200)]
    assert [assign_variant(i, WEIGHTS) for i in ids] != [assign_variant(i, WEIGHTS, salt="other") for i in ids]
    assert normalize_weights({"b": 3, "a": 1}) == {"a": 0.25, "b": 0.75}
    for bad in ({}, {"a": 0}, {"a": -1}, {"a": float("nan")}, {"a": True}, {"": 1}):
        with pytest.raises(ValueError):
            assign_variant("x", bad)
    with pytest.raises(ValueError):
        assign_variant("", WEIGHTS)


def test_min_sample_size_matches_a_hand_computation():
    # p1 = 0.10, p2 = 0.12, p̄ = 0.11, z(0.975) = 1.959964, z(0.8) = 0.841621
    hand = (1.959964 * math.sqrt(2 * 0.11 * 0.89) + 0.841621 * math.sqrt(0.1 * 0.9 + 0.12 * 0.88)) ** 2 / 0.02**2
    assert hand == pytest.approx(3840.8, abs=0.2)
    assert min_sample_size(0.1, 0.02, 0.05, 0.8) == math.ceil(hand) == 3841
    assert min_sample_size(0.1, 0.04) < min_sample_size(0.1, 0.02) < min_sample_size(0.1, 0.02, power=0.9)
    with pytest.raises(ValueError):
        min_sample_size(0.99, 0.02)


def test_two_proportion_ztest_known_value():
    # 100/1000 vs 130/1000: pooled 0.115, se = sqrt(0.115·0.885·0.002) = 0.014267, z = 2.1027
    z, p = two_proportion_ztest(100, 1000, 130, 1000)
    assert z == pytest.approx(2.1027, abs=1e-3)
    assert p == pytest.approx(0.03549, abs=2e-4)
    assert two_proportion_ztest(0, 10, 0, 10) == (0.0, 1.0)


def records(variant: str, confirmed: int, false_positive: int, missed: int = 0) -> list[dict]:
    return ([{"variant": variant, "verdict": "confirmed"}] * confirmed
            + [{"variant": variant, "verdict": "false_positive"}] * false_positive
            + [{"variant": variant, "verdict": "missed"}] * missed)


def test_challenger_better_on_false_positive_rate():
    data = records("champion", 3600, 400, missed=50) + records("challenger", 3720, 280)
    res = analyze_ab(data)
    assert res.variants["champion"]["false_positive_rate"] == pytest.approx(0.10)
    assert res.variants["challenger"]["false_positive_rate"] == pytest.approx(0.07)
    assert res.variants["champion"]["n"] == 4050 and res.variants["champion"]["flagged"] == 4000
    assert res.required_n_per_variant == 3841
    assert res.decision == "challenger_better" and res.p_value < 1e-5
    assert res.difference == pytest.approx(-0.03)


def test_champion_better_and_confirmation_rate():
    data = records("champion", 3720, 280) + records("challenger", 3600, 400)
    assert analyze_ab(data).decision == "champion_better"
    assert analyze_ab(data, metric="confirmation_rate").decision == "champion_better"
    flipped = records("champion", 3600, 400) + records("challenger", 3720, 280)
    assert analyze_ab(flipped, metric="confirmation_rate").decision == "challenger_better"


def test_no_difference_and_insufficient_data():
    same = records("champion", 3600, 400) + records("challenger", 3610, 390)
    res = analyze_ab(same)
    assert res.decision == "no_difference" and res.p_value > 0.05
    small = records("champion", 360, 40) + records("challenger", 380, 20)
    res = analyze_ab(small)
    assert res.decision == "insufficient_data"
    assert "need 3841 flagged items per variant" in res.reasons[0]
    assert analyze_ab(records("champion", 10, 1)).decision == "insufficient_data"


def test_significant_but_below_min_effect_is_no_difference():
    data = records("champion", 90_000, 10_000) + records("challenger", 90_800, 9_200)
    res = analyze_ab(data)
    assert res.p_value < 0.05 and abs(res.difference) < 0.02
    assert res.decision == "no_difference" and "min_effect" in res.reasons[0]


def test_unassigned_and_unknown_variants_are_reported():
    data = records("champion", 5, 1) + [{"verdict": "confirmed"}] + records("canary", 3, 0)
    res = analyze_ab(data)
    assert res.unassigned == 1 and "canary" in res.reasons[0]
    with pytest.raises(ValueError, match="unknown verdict"):
        analyze_ab([{"variant": "champion", "verdict": "meh"}])


@pytest.fixture(scope="module")
def create_endpoint_config():
    botocore_session = pytest.importorskip("botocore.session")
    from botocore.validate import ParamValidator

    shape = botocore_session.get_session().get_service_model("sagemaker").operation_model(
        "CreateEndpointConfig").input_shape

    def check(params: dict) -> None:
        report = ParamValidator().validate(params, shape)
        assert not report.has_errors(), report.generate_report()
        # ParamValidator skips patterns; check the name patterns from the same model.
        assert re.fullmatch(shape.members["EndpointConfigName"].metadata["pattern"], params["EndpointConfigName"])
        for key in ("ProductionVariants", "ShadowProductionVariants"):
            member = shape.members[key].member.members
            for v in params.get(key, []):
                assert re.fullmatch(member["VariantName"].metadata["pattern"], v["VariantName"])
                assert re.fullmatch(member["ModelName"].metadata["pattern"], v["ModelName"])

    return check


CHAMP = {"model_name": "streamguard_gnn.taint", "version": 7}
CHALL = {"model_name": "streamguard_gnn.taint", "version": 8}


def test_sagemaker_model_names_from_registry_records():
    assert sagemaker_model_name(CHAMP) == "streamguard-gnn-taint-v7"
    assert sagemaker_model_name({"sagemaker_model_name": "sg-prod-7"}) == "sg-prod-7"
    long_name = sagemaker_model_name({"model_name": "m" * 80, "version": 1})
    assert len(long_name) <= 63 and long_name != sagemaker_model_name({"model_name": "m" * 80, "version": 2})
    with pytest.raises(ValueError, match="sagemaker_model_name"):
        sagemaker_model_name({"sagemaker_model_name": "bad_name"})
    with pytest.raises(ValueError, match="model_name"):
        sagemaker_model_name({"version": 3})


def test_endpoint_plan_ab_validates_against_botocore(create_endpoint_config):
    plan = endpoint_plan(CHAMP, CHALL, challenger_weight=0.1)
    create_endpoint_config(plan)
    weights = {v["VariantName"]: v["InitialVariantWeight"] for v in plan["ProductionVariants"]}
    assert weights == {"champion": pytest.approx(0.9), "challenger": pytest.approx(0.1)}
    assert "ShadowProductionVariants" not in plan
    assert plan == endpoint_plan(CHAMP, CHALL, challenger_weight=0.1)  # pure: no clock, no randomness


def test_endpoint_plan_shadow_validates_against_botocore(create_endpoint_config):
    plan = endpoint_plan(CHAMP, CHALL, challenger_weight=0.25, shadow=True, instance_type="ml.c5.xlarge")
    create_endpoint_config(plan)
    assert [v["ModelName"] for v in plan["ProductionVariants"]] == ["streamguard-gnn-taint-v7"]
    assert plan["ShadowProductionVariants"][0]["ModelName"] == "streamguard-gnn-taint-v8"
    assert plan["ShadowProductionVariants"][0]["InitialVariantWeight"] == 0.25
    assert plan["EndpointConfigName"].startswith("streamguard-shadow-")


def test_endpoint_plan_long_names_and_errors(create_endpoint_config):
    long_a = {"model_name": "a" * 60, "version": 1}
    long_b = {"model_name": "b" * 60, "version": 1}
    plan = endpoint_plan(long_a, long_b)
    create_endpoint_config(plan)
    assert len(plan["EndpointConfigName"]) <= 63
    other = endpoint_plan(long_a, {"model_name": "b" * 60, "version": 2})
    assert plan["EndpointConfigName"] != other["EndpointConfigName"]
    with pytest.raises(ValueError, match="model_name"):
        endpoint_plan({"version": "7"}, CHALL)
    with pytest.raises(ValueError, match="both resolve"):
        endpoint_plan(CHAMP, dict(CHAMP))
    with pytest.raises(ValueError, match="challenger_weight"):
        endpoint_plan(CHAMP, CHALL, challenger_weight=1.0)
    with pytest.raises(ValueError, match="endpoint_config_name"):
        endpoint_plan(CHAMP, CHALL, endpoint_config_name="bad_name!")


def test_analyze_ab_reads_ingested_feedback():
    from streamguard.feedback import ingest_feedback

    rows = [{"code": f"f{i}()", "prediction": 1, "verdict": "confirmed" if i % 5 else "false_positive",
             "model_version": "7", "timestamp": "2025-05-01T00:00:00Z",
             "variant": "Champion" if i % 2 else "challenger"} for i in range(40)]
    res = analyze_ab(ingest_feedback(rows).feedback)
    assert res.variants["champion"]["flagged"] == 20 and res.variants["challenger"]["false_positive"] == 4
    assert res.decision == "insufficient_data"
