"""Param metadata (description, choices, range): in signatures, on the wire, in schemas, checked."""

from __future__ import annotations

import json

import pytest

from edge_runner.compat.clarifai import Param as ClarifaiParam
from edge_runner.compat.clarifai import prepare_methods
from edge_runner.errors import InvalidArgument, ModelFolderError
from edge_runner.models import MethodSignature, ModelClass, Param, signature_hash, signatures_of
from edge_runner.models.json_schema import param_schema
from edge_runner.models.signatures import parse_cli_value, validate_arguments
from edge_runner.models.wire import model_spec, signatures_from_spec, spec_to_dict
from edge_runner.proto import tunnel_pb2 as pb


class _Tuned(ModelClass):
    @ModelClass.method
    def predict(
        self,
        text: str,
        style: str = ClarifaiParam(
            default="plain", description="How to style it", choices=["plain", "loud"]
        ),
        times: int = ClarifaiParam(default=1, description="Repeats", min_value=1, max_value=3),
        scale: float | None = ClarifaiParam(default=None, min_value=0.0),
        # as a Clarifai folder writes it; the list is a default nobody mutates
        weights: list[float] = ClarifaiParam(default=[0.5], max_value=1),  # noqa: B008
    ) -> str:
        return text


def _predict() -> MethodSignature:
    prepare_methods(_Tuned)
    (sig,) = signatures_of(_Tuned)
    return sig


def test_param_metadata_reaches_the_signature() -> None:
    """Param(description, choices, min/max) defaults become the signature's rules."""
    params = {p.name: p for p in _predict().params}
    assert params["style"] == Param(
        "style", "str", False, "plain", description="How to style it", choices=("plain", "loud")
    )
    assert params["times"].min_value == 1.0 and params["times"].max_value == 3.0
    assert params["times"].description == "Repeats"
    assert params["text"] == Param("text", "str", True)


def test_rules_round_trip_through_json_and_the_wire() -> None:
    """to_dict/from_dict and the ModelSpec keep every rule; a param without rules has no keys."""
    sig = _predict()
    assert MethodSignature.from_dict(json.loads(json.dumps(sig.to_dict()))) == sig
    spec = pb.ModelSpec.FromString(
        model_spec("m", (sig,), backend="python", chat=False).SerializeToString()
    )
    assert signatures_from_spec(spec) == (sig,)
    view = spec_to_dict(spec)["methods"][0]["params"]
    assert view[0] == {"name": "text", "type": "str", "required": True, "default": None}
    assert view[1]["choices"] == ["plain", "loud"]
    assert view[2]["min_value"] == 1.0 and view[2]["max_value"] == 3.0


def test_a_spec_from_an_older_runner_has_no_rules() -> None:
    """A ParamSpec without the new fields reads as a parameter without rules."""
    old = pb.ModelSpec(
        model_id="m",
        methods=[
            pb.MethodSpec(
                name="f",
                kind=pb.UNARY,
                params=[pb.ParamSpec(name="n", type="int", required=False, default_json="2")],
                returns="int",
            )
        ],
    )
    (sig,) = signatures_from_spec(old)
    assert sig.params == (Param("n", "int", False, 2),)


def test_hash_counts_rules_but_not_descriptions() -> None:
    """Choices and ranges change the API hash; a parameter's description does not."""
    sig = _predict()
    first = sig.params[1]
    reworded = MethodSignature(
        sig.name,
        sig.kind,
        (Param(first.name, first.type, False, "plain", "Other words", first.choices),),
        sig.returns,
    )
    base = MethodSignature(sig.name, sig.kind, (first,), sig.returns)
    unruled = MethodSignature(
        sig.name, sig.kind, (Param(first.name, first.type, False, "plain"),), sig.returns
    )
    assert signature_hash([reworded]) == signature_hash([base])
    assert signature_hash([unruled]) != signature_hash([base])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"style": "quiet"}, 'argument \'style\' must be one of "plain", "loud"; got "quiet"'),
        ({"times": 0}, "argument 'times' must be between 1 and 3; got 0"),
        ({"times": 9}, "argument 'times' must be between 1 and 3; got 9"),
        ({"scale": -0.5}, "argument 'scale' must be at least 0; got -0.5"),
        ({"weights": [0.2, 1.5]}, "argument 'weights' must be at most 1; got 1.5"),
    ],
)
def test_validate_arguments_refuses_values_outside_the_rules(
    args: dict[str, object], message: str
) -> None:
    """A value outside the choices or the range names the parameter and what is allowed."""
    with pytest.raises(InvalidArgument) as caught:
        validate_arguments(_predict(), {"text": "hi", **args})
    assert str(caught.value) == message
    assert caught.value.argument == next(iter(args))


def test_validate_arguments_accepts_values_inside_the_rules() -> None:
    """Bounds are inclusive, null passes an optional parameter, defaults fill in."""
    out = validate_arguments(_predict(), {"text": "hi", "times": 3, "scale": None})
    assert out == {"text": "hi", "style": "plain", "times": 3, "scale": None, "weights": [0.5]}


def test_param_schema_has_description_enum_and_bounds() -> None:
    """The JSON schema carries description, enum and minimum/maximum (on list items too)."""
    params = {p.name: p for p in _predict().params}
    assert param_schema(params["style"]) == {
        "type": "string",
        "description": "How to style it",
        "enum": ["plain", "loud"],
    }
    assert param_schema(params["times"]) == {
        "type": "integer",
        "description": "Repeats",
        "minimum": 1.0,
        "maximum": 3.0,
    }
    assert param_schema(params["scale"]) == {
        "anyOf": [{"type": "number", "minimum": 0.0}, {"type": "null"}]
    }
    assert param_schema(params["weights"]) == {
        "type": "array",
        "items": {"type": "number", "maximum": 1.0},
    }


def test_rules_that_contradict_the_folder_fail_at_start() -> None:
    """Choices of the wrong type, or a default outside its own rule, name the parameter."""

    class WrongChoices(ModelClass):
        @ModelClass.method
        def predict(self, n: int = ClarifaiParam(default=1, choices=["one", "two"])) -> int:
            return int(n)

    class DefaultOutside(ModelClass):
        @ModelClass.method
        def predict(self, n: int = ClarifaiParam(default=0, min_value=1)) -> int:
            return int(n)

    for cls, match in (
        (WrongChoices, r"parameter 'n' lists choices \['one', 'two'\] that are not all int"),
        (DefaultOutside, r"parameter 'n': its default breaks its own rule .*at least 1;"),
    ):
        prepare_methods(cls)
        with pytest.raises(ModelFolderError, match=match):
            signatures_of(cls)


def test_cli_values_are_checked_against_the_rules() -> None:
    """`--times 9` is refused on the command line with the control plane's words."""
    params = {p.name: p for p in _predict().params}
    assert parse_cli_value(params["times"], "2") == 2
    with pytest.raises(InvalidArgument, match="argument 'times' must be between 1 and 3; got 9"):
        parse_cli_value(params["times"], "9")
    with pytest.raises(InvalidArgument, match='must be one of "plain", "loud"; got "x"'):
        parse_cli_value(params["style"], "x")
