"""A/B testing of champion and challenger in production: assignment, analysis, endpoint config.

- `assign_variant` buckets a request id deterministically (sha256 of salt + id), the same in every
  process and on every machine (Python's `hash()` is salted per process and never used).
- `analyze_ab` compares the variants' reviewed outcomes with a two-proportion z-test, after checking
  that each arm has the sample size needed to detect `min_effect`.
- `endpoint_plan` builds the SageMaker `CreateEndpointConfig` request for a weighted split or a
  shadow test.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

CHAMPION, CHALLENGER = "champion", "challenger"
FLAGGED_VERDICTS = ("confirmed", "false_positive")
# metric -> (numerator verdict, True when a lower value is better)
METRICS = {"false_positive_rate": ("false_positive", True), "confirmation_rate": ("confirmed", False)}
_NAME_OK = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def normalize_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights as fractions summing to 1, sorted by variant name.

    Raises:
        ValueError: empty mapping, or a weight that is not a finite positive number.
    """
    if not weights:
        raise ValueError("weights: at least one variant is needed")
    for name, weight in weights.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"weights: variant names must be non-empty strings, got {name!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"weights[{name!r}]: must be a finite number > 0, got {weight!r}")
    total = float(sum(weights.values()))
    return {name: weights[name] / total for name in sorted(weights)}


def bucket(request_id: str, salt: str = "streamguard-ab") -> float:
    """A uniform number in [0, 1) fixed by salt and request id (first 8 bytes of sha256)."""
    digest = hashlib.sha256(f"{salt}\x00{request_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(request_id: str, weights: Mapping[str, float], salt: str = "streamguard-ab") -> str:
    """The variant serving `request_id`, in proportion to `weights` and stable across processes."""
    if not isinstance(request_id, str) or not request_id:
        raise ValueError(f"request_id must be a non-empty string, got {request_id!r}")
    shares = normalize_weights(weights)
    u = bucket(request_id, salt)
    cumulative = 0.0
    for name, share in shares.items():
        cumulative += share
        if u < cumulative:
            return name
    return name  # u within rounding of 1.0: the last variant


def min_sample_size(p_baseline: float, min_effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Per-arm sample size for a two-sided two-proportion z-test to detect p → p + min_effect.

    n = (z_{1−α/2}·√(2·p̄(1−p̄)) + z_{power}·√(p1(1−p1) + p2(1−p2)))² / δ², p̄ = (p1 + p2)/2.
    """
    if not 0 < p_baseline < 1:
        raise ValueError(f"p_baseline must be in (0, 1), got {p_baseline}")
    if min_effect <= 0 or not 0 < p_baseline + min_effect < 1:
        raise ValueError(f"min_effect must be > 0 with p_baseline + min_effect < 1, got {min_effect}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must be in (0, 1)")
    p1, p2 = p_baseline, p_baseline + min_effect
    p_bar = (p1 + p2) / 2
    z_a = NormalDist().inv_cdf(1 - alpha / 2)
    z_b = NormalDist().inv_cdf(power)
    root = z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root**2 / min_effect**2)


def two_proportion_ztest(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of p2 − p1; returns (z, two-sided p)."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples must be non-empty")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0  # both rates 0 or both 1: no evidence of a difference
    z = (x2 / n2 - x1 / n1) / se
    return z, 2 * (1 - NormalDist().cdf(abs(z)))


@dataclass(frozen=True)
class VariantStats:
    """Reviewed outcomes of one variant; rates are among flagged items (None when none flagged)."""

    n: int
    flagged: int
    confirmed: int
    false_positive: int
    missed: int
    correct: int

    @property
    def false_positive_rate(self) -> float | None:
        """Share of flagged items reviewers marked false positive (1 − precision)."""
        return self.false_positive / self.flagged if self.flagged else None

    @property
    def confirmation_rate(self) -> float | None:
        return self.confirmed / self.flagged if self.flagged else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "false_positive_rate": self.false_positive_rate,
                "confirmation_rate": self.confirmation_rate}


@dataclass
class ABResult:
    """The A/B analysis: decision in {challenger_better, champion_better, no_difference, insufficient_data}."""

    decision: str
    reasons: list[str]
    metric: str
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    difference: float | None = None  # challenger − champion
    z: float | None = None
    p_value: float | None = None
    required_n_per_variant: int | None = None
    unassigned: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _get(record: Any, key: str) -> Any:
    return record.get(key) if isinstance(record, Mapping) else getattr(record, key, None)


def _variant_stats(records: Iterable[Any], variant_key: str) -> tuple[dict[str, VariantStats], int]:
    counts: dict[str, dict[str, int]] = {}
    unassigned = 0
    for rec in records:
        variant, verdict = _get(rec, variant_key), _get(rec, "verdict")
        if not variant:
            unassigned += 1
            continue
        if verdict not in ("confirmed", "false_positive", "missed", "correct"):
            raise ValueError(f"A/B record for variant {variant!r}: unknown verdict {verdict!r}")
        slot = counts.setdefault(str(variant).lower(), dict.fromkeys(
            ("confirmed", "false_positive", "missed", "correct"), 0))
        slot[verdict] += 1
    stats = {name: VariantStats(n=sum(c.values()), flagged=c["confirmed"] + c["false_positive"], **c)
             for name, c in sorted(counts.items())}
    return stats, unassigned


def analyze_ab(feedback_records: Iterable[Any], *, variant_key: str = "variant",
               metric: str = "false_positive_rate", alpha: float = 0.05, min_effect: float = 0.02,
               power: float = 0.8) -> ABResult:
    """Compare champion and challenger on reviewed outcomes of the flagged items.

    Args:
        feedback_records: `FeedbackRecord`s or dicts with `verdict` and the variant field.
        metric: "false_positive_rate" (lower is better) or "confirmation_rate" (higher is better),
            both among flagged items.
        min_effect: the smallest absolute difference worth acting on; it sets the sample size and
            a significant difference below it counts as no difference.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    numerator, lower_better = METRICS[metric]
    stats, unassigned = _variant_stats(feedback_records, variant_key)
    result = ABResult("insufficient_data", [], metric, {k: v.as_dict() for k, v in stats.items()},
                      unassigned=unassigned)
    others = sorted(set(stats) - {CHAMPION, CHALLENGER})
    if others:
        result.reasons.append(f"variants other than champion/challenger ignored: {others}")
    champ, chall = stats.get(CHAMPION), stats.get(CHALLENGER)
    if champ is None or chall is None or not champ.flagged or not chall.flagged:
        result.reasons.append("both champion and challenger need flagged, reviewed items")
        return result
    x1, n1 = getattr(champ, numerator), champ.flagged
    x2, n2 = getattr(chall, numerator), chall.flagged
    p1, p2 = x1 / n1, x2 / n2
    result.difference = p2 - p1
    # Size the test on the champion's observed rate, kept away from 0/1 where the formula degenerates.
    base = min(max(p1, 0.01), 0.99 - min_effect)
    result.required_n_per_variant = min_sample_size(base, min_effect, alpha, power)
    result.z, result.p_value = two_proportion_ztest(x1, n1, x2, n2)
    rates = f"{metric} champion {p1:.4f} (n={n1}), challenger {p2:.4f} (n={n2})"
    if min(n1, n2) < result.required_n_per_variant:
        result.reasons.append(f"{rates}; need {result.required_n_per_variant} flagged items per variant "
                              f"to detect {min_effect} at alpha {alpha}, power {power}")
        return result
    if result.p_value >= alpha:
        result.decision = "no_difference"
        result.reasons.append(f"{rates}; p {result.p_value:.4g} ≥ {alpha}")
    elif abs(result.difference) < min_effect:
        result.decision = "no_difference"
        result.reasons.append(f"{rates}; significant (p {result.p_value:.4g}) but "
                              f"|difference| {abs(result.difference):.4f} < min_effect {min_effect}")
    else:
        challenger_wins = (result.difference < 0) == lower_better
        result.decision = "challenger_better" if challenger_wins else "champion_better"
        result.reasons.append(f"{rates}; p {result.p_value:.4g} < {alpha}, difference {result.difference:+.4f}")
    return result


def _as_mapping(record: Any) -> Mapping[str, Any]:
    return record.to_dict() if hasattr(record, "to_dict") else record


def _fit_name(name: str, limit: int = 63) -> str:
    """Letters, digits and single hyphens, ≤ limit chars (a digest keeps shortened names unique)."""
    clean = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]+", "-", name)).strip("-")
    if len(clean) <= limit:
        return clean
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return f"{clean[:limit - 11].rstrip('-')}-{digest}"


def sagemaker_model_name(record: Any, role: str = "model") -> str:
    """The SageMaker Model serving a registry version.

    `sagemaker_model_name` when the record has one, else `<model_name>-v<version>` made
    SageMaker-safe (registry names may hold dots and underscores; SageMaker names may not). The
    deploy step creates the Model (`CreateModel`) under this same name.
    """
    rec = _as_mapping(record)
    explicit = rec.get("sagemaker_model_name")
    if explicit is not None:
        if not isinstance(explicit, str) or len(explicit) > 63 or \
                not re.fullmatch(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?", explicit):
            raise ValueError(f"{role}['sagemaker_model_name']: letters, digits, hyphens, ≤ 63 chars; "
                             f"got {explicit!r}")
        return explicit
    name, version = rec.get("model_name"), rec.get("version")
    if not isinstance(name, str) or not name or version is None:
        raise ValueError(f"{role}: needs 'sagemaker_model_name', or 'model_name' and 'version'")
    return _fit_name(f"{name}-v{version}")


def endpoint_plan(champion: Mapping[str, Any] | Any, challenger: Mapping[str, Any] | Any, *,
                  challenger_weight: float = 0.1, shadow: bool = False,
                  instance_type: str = "ml.m5.large", instance_count: int = 1,
                  endpoint_config_name: str | None = None, data_capture_uri: str | None = None,
                  capture_percentage: int = 100) -> dict[str, Any]:
    """The `CreateEndpointConfig` request serving champion and challenger.

    Args:
        champion, challenger: registry version records (dicts or objects with `to_dict`); see
            `sagemaker_model_name` for the SageMaker Model each variant serves.
        challenger_weight: in (0, 1). A/B: the challenger's share of traffic. Shadow: the share of
            requests replicated to the challenger (its weight relative to the production
            variant's 1.0); the challenger's answers are never returned to callers.
        data_capture_uri: ``s3://`` prefix where the endpoint captures requests and responses
            (`DataCaptureConfig`); `streamguard.serving.capture` turns them into verdict logs.
        capture_percentage: share of requests captured, 1..100.
    """
    if not 0 < challenger_weight < 1:
        raise ValueError(f"challenger_weight must be in (0, 1), got {challenger_weight}")
    if isinstance(instance_count, bool) or not isinstance(instance_count, int) or instance_count < 1:
        raise ValueError(f"instance_count must be an integer ≥ 1, got {instance_count!r}")
    champ_model = sagemaker_model_name(champion, "champion")
    chall_model = sagemaker_model_name(challenger, "challenger")
    if champ_model == chall_model:
        raise ValueError(f"champion and challenger both resolve to SageMaker model {champ_model!r}")
    mode = "shadow" if shadow else "ab"
    name = endpoint_config_name or _fit_name(f"streamguard-{mode}-{champ_model}-{chall_model}")
    if not _NAME_OK.match(name):
        raise ValueError(f"endpoint_config_name {name!r}: letters, digits and hyphens, ≤ 63 chars")

    def variant(variant_name: str, model: str, weight: float) -> dict[str, Any]:
        return {"VariantName": variant_name, "ModelName": model, "InitialInstanceCount": instance_count,
                "InstanceType": instance_type, "InitialVariantWeight": float(weight)}

    if shadow:
        plan = {"EndpointConfigName": name,
                "ProductionVariants": [variant(CHAMPION, champ_model, 1.0)],
                "ShadowProductionVariants": [variant(CHALLENGER, chall_model, challenger_weight)]}
    else:
        plan = {"EndpointConfigName": name,
                "ProductionVariants": [variant(CHAMPION, champ_model, 1.0 - challenger_weight),
                                       variant(CHALLENGER, chall_model, challenger_weight)]}
    if data_capture_uri is not None:
        if not str(data_capture_uri).startswith("s3://"):
            raise ValueError(f"data_capture_uri must be an s3:// URI, got {data_capture_uri!r}")
        if isinstance(capture_percentage, bool) or not isinstance(capture_percentage, int) \
                or not 1 <= capture_percentage <= 100:
            raise ValueError(f"capture_percentage must be an integer in 1..100, got {capture_percentage!r}")
        plan["DataCaptureConfig"] = {
            "EnableCapture": True, "InitialSamplingPercentage": capture_percentage,
            "DestinationS3Uri": data_capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            # JSON bodies are stored as text, not base64, so captures read like the local verdict log.
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        }
    return plan
