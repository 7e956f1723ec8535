"""Validation equals the published schema: for every registered job type, the JSON Schema that
`GET /job-types` publishes and the validation a submission meets (`JobType.parse`, strict JSON:
no `true` for 1, no `"5"` for 5) accept and refuse the same payloads. Property-based: values the
schema describes (tests.support.schemas), any JSON, and valid payloads with one field replaced."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobline.bootstrap import default_registry
from jobline.errors import InvalidPayload
from jobline.models import SubmitRequest
from jobline.registry import JobType
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, RootModel

from tests.support.builders import ANN
from tests.support.schemas import values_of
from tests.support.services import build_fake_service

REGISTRY = default_registry()
NAMES = REGISTRY.names()
"""Every type this checkout discovers: the examples and any team's."""

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value (what a request body can hold)."""

PROPERTY_TESTS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def accepts(job_type: JobType[Any], payload: Any) -> bool:
    try:
        job_type.parse(payload)
    except InvalidPayload:
        return False
    return True


def schema_accepts(job_type: JobType[Any], payload: Any) -> bool:
    return Draft202012Validator(job_type.input_schema()).is_valid(payload)


@pytest.mark.parametrize("name", NAMES)
def test_the_published_schema_is_valid_json_schema(name: str) -> None:
    Draft202012Validator.check_schema(REGISTRY.get(name).input_schema())


@pytest.mark.parametrize("name", NAMES)
@PROPERTY_TESTS
@given(data=st.data())
def test_what_the_schema_accepts_the_api_accepts(
    name: str, data: st.DataObject
) -> None:
    job_type = REGISTRY.get(name)
    payload = data.draw(values_of(job_type.input_schema()), label="payload")
    assert schema_accepts(job_type, payload)
    assert accepts(job_type, payload), payload


@pytest.mark.parametrize("name", NAMES)
@PROPERTY_TESTS
@given(payload=JSON)
def test_any_json_is_accepted_by_both_or_refused_by_both(
    name: str, payload: Any
) -> None:
    job_type = REGISTRY.get(name)
    assert accepts(job_type, payload) == schema_accepts(job_type, payload), payload


@pytest.mark.parametrize("name", NAMES)
@PROPERTY_TESTS
@given(data=st.data())
def test_a_valid_payload_with_one_field_replaced_is_judged_alike(
    name: str, data: st.DataObject
) -> None:
    # Given a payload the schema describes, one of its fields (or a new one) set to any JSON:
    # the near misses (wrong types, out of range, unknown fields) a caller makes
    job_type = REGISTRY.get(name)
    schema = job_type.input_schema()
    payload = data.draw(values_of(schema), label="valid")
    if not isinstance(payload, dict):
        return
    fields = [*sorted({*payload, *schema.get("properties", {})}), "unknown_field"]
    field = data.draw(st.sampled_from(fields), label="field")
    payload = {**payload, field: data.draw(JSON, label="value")}

    # Then the API and the schema agree on it
    assert accepts(job_type, payload) == schema_accepts(job_type, payload), payload


@pytest.mark.parametrize(
    "payload",
    [{"seconds": True}, {"seconds": "5"}, {"seconds": [5]}, {"seconds": None}],
    ids=["true", "text", "list", "null"],
)
def test_a_submission_is_never_coerced(payload: dict[str, Any]) -> None:
    # Given a sleep submission whose seconds is not a JSON number
    service, repo, _ = build_fake_service()

    # Then it is refused, naming the field, and nothing is stored
    with pytest.raises(InvalidPayload) as caught:
        service.submit(ANN, SubmitRequest(type="sleep", payload=payload))
    assert [error["loc"] for error in caught.value.errors] == [["payload", "seconds"]]
    assert repo.jobs == []


class Counted(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int


class Anything(RootModel[dict[str, Any]]):
    pass


def _noop(payload: Any, context: Any) -> None:
    return None


COUNTED = JobType(name="counted", description="", input_model=Counted, handler=_noop)
ANYTHING = JobType(name="anything", description="", input_model=Anything, handler=_noop)


def test_a_whole_number_written_with_a_fraction_is_an_integer_as_the_schema_says() -> (
    None
):
    # Given a type with an integer field (JSON Schema's "integer": any number without a
    # fraction, so a JavaScript client's 8.0 is one)
    # Then 8.0 is 8 for both the schema and the API; 8.5, true and "8" are refused by both
    for payload, valid in [
        ({"steps": 8.0}, True),
        ({"steps": 8}, True),
        ({"steps": 8.5}, False),
        ({"steps": True}, False),
        ({"steps": "8"}, False),
    ]:
        assert schema_accepts(COUNTED, payload) is valid, payload
        assert accepts(COUNTED, payload) is valid, payload
    parsed = COUNTED.parse({"steps": 8.0})
    assert (parsed.steps, type(parsed.steps)) == (8, int)


def test_a_payload_valid_as_written_keeps_its_numbers() -> None:
    # Given a type taking any object: 5.0 stays 5.0 for the handler (only a payload refused as
    # written is validated again with whole numbers as integers)
    parsed = ANYTHING.parse({"x": 5.0, "y": [1.0]})
    assert parsed.root == {"x": 5.0, "y": [1.0]}
    assert isinstance(parsed.root["x"], float)
