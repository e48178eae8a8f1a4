"""Request bodies are JSON that the API server also reads as YAML (apply patches): every string
must survive both decoders unchanged. Found by the hostile suite: a pool with a C1 control
character in a field the operator copies (spec.tracing.endpoint into an env value, a resource
name) failed to apply with "control characters are not allowed" instead of an error naming
the field."""

from __future__ import annotations

import json

import pytest
import yaml

from workerpool_operator.kube.transport import encode_body

STRINGS = [
    "plain",
    "https://\U00010b54\x93R",  # beyond the BMP and a C1 control, as the hostile draw had it
    ":\x96\x1c\U00052c98\x91\xf3",
    "\x7f\x80\x84\x85\x86\x9f\xa0",
    "\ufffe\uffff\ufeff\ufffd",
    "line\u2028separators\u2029and\x85NEL",
    "tab\tnew\nline\rcr\x00nul",
    "\u00e9t\u00e9 \u65e5\u672c",
]


@pytest.mark.parametrize("text", STRINGS, ids=range(len(STRINGS)))
def test_every_string_reads_back_the_same_as_json_and_as_yaml(text: str) -> None:
    body = {"metadata": {"name": "p"}, "spec": {"env": [{"name": "X", "value": text}]}, text: 1}
    data = encode_body(body)
    assert json.loads(data) == body
    assert yaml.safe_load(data.decode()) == body


def test_utf8_stays_raw_so_no_surrogate_escape_reaches_the_yaml_decoder() -> None:
    data = encode_body({"v": "\U00010b54\u00e9"})
    assert "\U00010b54\u00e9".encode() in data
    assert b"\\ud8" not in data


def test_plain_json_of_a_c1_control_is_not_yaml() -> None:
    """What the operator sent before: the YAML reader refuses it (so the test above can fail)."""
    raw = json.dumps({"v": "\x93"}, ensure_ascii=False)
    with pytest.raises(yaml.YAMLError, match="special characters are not allowed"):
        yaml.safe_load(raw)
