"""Record normalisation: accepted spellings, specific errors, language detection, stable ids."""

from __future__ import annotations

import pytest

from streamguard.core.records import (LANGUAGES, RecordError, content_id, detect_language,
                                      normalize_record)

PY = "def f(cursor, uid):\n    cursor.execute('SELECT 1 WHERE id = %s', (uid,))\n"
JAVA = "public class A {\n    public void run(String s) {\n        System.out.println(s);\n    }\n}\n"


def test_languages_constant():
    assert LANGUAGES == ("python", "java")


@pytest.mark.parametrize("raw,expected", [(0, 0), (1, 1), (True, 1), (False, 0), ("0", 0), ("1", 1),
                                          ("true", 1), ("False", 0), (" TRUE ", 1), (1.0, 1)])
def test_label_spellings(raw, expected):
    assert normalize_record({"code": PY, "label": raw, "language": "python"})["label"] == expected


@pytest.mark.parametrize("raw,expected", [(True, 1), (False, 0), ("true", 1)])
def test_vulnerable_field(raw, expected):
    assert normalize_record({"code": PY, "vulnerable": raw, "language": "python"})["label"] == expected


def test_label_and_vulnerable_must_agree():
    with pytest.raises(RecordError, match="contradicts"):
        normalize_record({"code": PY, "label": 1, "vulnerable": False, "language": "python"})


@pytest.mark.parametrize("obj,reason,message", [
    ({"label": 1}, "missing_code", "missing field 'code'"),
    ({"code": "   \n", "label": 1}, "empty_code", "field 'code' is empty"),
    ({"code": 5, "label": 1}, "bad_code", "field 'code' must be a string, got number"),
    ({"code": PY, "label": "maybe", "language": "python"}, "bad_label",
     "label 'maybe' is not 0/1 or true/false"),
    ({"code": PY, "label": 2, "language": "python"}, "bad_label", "label 2 is not 0/1 or true/false"),
    ({"code": PY, "language": "python"}, "missing_label", "missing field 'label' (or 'vulnerable')"),
    ({"code": PY, "label": 1, "language": "cobol"}, "unknown_language",
     "unknown language 'cobol' (supported: python, java)"),
    ({"code": "x", "label": 1}, "undetected_language", "not recognisably python or java"),
    ([1, 2], "not_object", "record is a JSON array, not an object"),
    ({"code": PY, "label": 1, "language": "python", "counterfactual": 3}, "bad_counterfactual",
     "'counterfactual' must be a string"),
    ({"code": PY, "label": 1, "language": "python", "counterfactual": PY}, "bad_counterfactual",
     "identical"),
    ({"code": PY, "label": 1, "language": "python", "group": ["a"]}, "bad_group", "'group' must be a string"),
])
def test_specific_errors(obj, reason, message):
    with pytest.raises(RecordError) as info:
        normalize_record(obj)
    assert info.value.reason == reason
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_oversize_code_message():
    code = "x = 1\n" + "#" * 250_000
    with pytest.raises(RecordError, match=r"code is 250006 bytes, over the 200000-byte limit"):
        normalize_record({"code": code, "label": 0, "language": "python"})
    assert normalize_record({"code": code, "label": 0, "language": "python"}, max_code_bytes=300_000)


def test_normalised_fields_and_stable_id():
    rec = normalize_record({"code": PY, "label": "1", "language": " Python ", "cwe": "89",
                            "group": 7, "source": "s", "license": "MIT"})
    assert rec["language"] == "python"
    assert rec["cwe"] == "CWE-89"
    assert rec["group"] == "7"
    assert rec["license"] == "MIT"
    assert rec["id"] == content_id(PY, "python")
    assert len(rec["id"]) == 16 and int(rec["id"], 16) >= 0
    again = normalize_record({"code": PY, "label": 1, "language": "python"})
    assert again["id"] == rec["id"]
    assert again["cwe"] is None and again["group"] is None and "license" not in again
    assert normalize_record({"code": PY, "label": 1, "id": "given"})["id"] == "given"


def test_language_detection_and_default():
    assert detect_language(PY) == "python"
    assert detect_language(JAVA) == "java"
    assert detect_language("x") is None
    assert normalize_record({"code": PY, "label": 0})["language"] == "python"
    assert normalize_record({"code": JAVA, "label": 0})["language"] == "java"
    assert normalize_record({"code": "x", "label": 0}, default_language="java")["language"] == "java"


def test_label_optional_for_inference():
    rec = normalize_record({"code": PY, "language": "python"}, require_label=False)
    assert rec["label"] is None
    with pytest.raises(RecordError, match="is not 0/1"):
        normalize_record({"code": PY, "language": "python", "label": "x"}, require_label=False)
