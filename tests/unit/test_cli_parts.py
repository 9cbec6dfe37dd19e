"""CLI pieces without processes: argument parsing by signature, the banner, runner ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_runner.cli.banner import render_banner
from edge_runner.cli.calls import parse_method_args
from edge_runner.errors import InvalidArgument
from edge_runner.models.loader import load_model_folder
from edge_runner.models.signatures import MethodSignature
from edge_runner.runner.identity import claim_runner_id
from tests.conftest import HELLO


def _sig(name: str) -> MethodSignature:
    return {s.name: s for s in load_model_folder(HELLO).signatures}[name]


def test_arguments_are_typed_by_the_signature() -> None:
    """--n 3 becomes an int, --text stays a string, --json merges a whole object."""
    assert parse_method_args(_sig("generate"), ["--text", "hi", "--n", "3"], None) == {
        "text": "hi",
        "n": 3,
    }
    assert parse_method_args(_sig("generate"), ["--n=4"], '{"text": "j"}') == {"text": "j", "n": 4}
    messages = parse_method_args(_sig("chat"), ["--messages", '[{"role": "user"}]'], None)
    assert messages == {"messages": [{"role": "user"}]}


@pytest.mark.parametrize(
    ("argv", "json_args", "words"),
    [
        (["--colour", "red"], None, "no argument 'colour'"),
        (["--n", "many"], None, "'n'"),
        (["--text"], None, "needs a value"),
        (["stray"], None, "--NAME VALUE"),
        ([], "[1]", "JSON object"),
        ([], "{oops", "not valid JSON"),
    ],
)
def test_bad_cli_arguments_name_the_problem(
    argv: list[str], json_args: str | None, words: str
) -> None:
    """Unknown, mistyped or valueless arguments raise InvalidArgument saying which."""
    with pytest.raises(InvalidArgument, match=words):
        parse_method_args(_sig("generate"), argv, json_args)


def test_banner_shows_methods_and_snippets_without_secrets(tmp_path: Path) -> None:
    """The banner lists signatures and snippets that read the token from the environment."""
    folder = load_model_folder(HELLO)
    text = render_banner(
        api_base="http://127.0.0.1:7070",
        source=str(HELLO),
        runner={
            "runner_id": "runner-1",
            "models": ["hello"],
            "methods": [s.to_dict() for s in folder.signatures],
            "chat": True,
            "pool_size": 32,
        },
        secret_backend="file:/x/secrets",
        data_dir=tmp_path,
    )
    assert "predict(text: str) -> str" in text
    assert "edge-runner predict hello --text hi" in text
    assert "edge-runner generate hello --text hi" in text
    assert "edge-runner chat hello" in text
    assert '"Authorization: Bearer $EDGE_RUNNER_PAT"' in text
    assert 'api_key=os.environ["EDGE_RUNNER_PAT"]' in text
    assert "er_pat_" not in text


def test_runner_id_persists_and_is_not_shared(tmp_path: Path) -> None:
    """The same folder keeps its id across restarts; a second live runner gets another."""
    first = claim_runner_id("http://cp", "/models/a", tmp_path / "data", tmp_path / "run")
    second = claim_runner_id("http://cp", "/models/a", tmp_path / "data", tmp_path / "run")
    assert first.runner_id != second.runner_id
    first_id = first.runner_id
    first.release()
    second.release()
    again = claim_runner_id("http://cp", "/models/a", tmp_path / "data", tmp_path / "run")
    assert again.runner_id == first_id
    again.release()


def test_up_hands_every_control_limit_to_its_control_plane() -> None:
    """`up --max-connections ... --handshake-timeout ...` reach the `control` child as given."""
    from edge_runner.cli.daemon_args import CONTROL_SETTINGS, control_config
    from edge_runner.cli.main import build_parser
    from edge_runner.cli.up import control_argv

    limits = {
        "--max-connections": "7",
        "--max-header-bytes": "9000",
        "--header-timeout": "3.5",
        "--body-idle-timeout": "4.5",
        "--handshake-timeout": "5.5",
    }
    args = build_parser().parse_args(["up", *(x for kv in limits.items() for x in kv)])
    argv = control_argv(control_config(args))
    for flag, value in limits.items():
        assert argv[argv.index(flag) + 1] == value
    # Every tuning option of `control` that `up` also takes is passed on (not the replica
    # options: `up` is one process on SQLite).
    control = build_parser().parse_args(["control"])
    tuning = {
        name
        for name, value in vars(control).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    } - {"port", "grpc_port", "bus_replicas"}
    assert tuning <= set(CONTROL_SETTINGS)


def test_data_type_arguments_take_files_and_urls(tmp_path: Path) -> None:
    """--image @FILE sends the file as base64, --image https://... as a URL, --doc @FILE a
    Text's content; a missing file is an error naming it."""
    from edge_runner.models.signatures import MethodKind, Param

    sig = MethodSignature(
        "m",
        MethodKind.UNARY,
        (Param("image", "Image", True), Param("doc", "Text", True), Param("raw", "bytes", True)),
        "str",
    )
    (tmp_path / "cat.jpg").write_bytes(b"\xff\xd8jpeg")
    (tmp_path / "notes.txt").write_text("héllo")
    argv = ["--image", f"@{tmp_path / 'cat.jpg'}", "--doc", f"@{tmp_path / 'notes.txt'}"]
    assert parse_method_args(sig, [*argv, "--raw", f"@{tmp_path / 'cat.jpg'}"], None) == {
        "image": {"base64": "/9hqcGVn"},
        "doc": {"text": "héllo"},
        "raw": {"base64": "/9hqcGVn"},
    }
    assert parse_method_args(sig, ["--image", "https://e.com/c.jpg", "--doc", "plain"], None) == {
        "image": {"url": "https://e.com/c.jpg"},
        "doc": {"text": "plain"},
    }
    with pytest.raises(InvalidArgument, match="cannot read"):
        parse_method_args(sig, ["--image", f"@{tmp_path / 'missing.jpg'}"], None)


def test_save_writes_binary_results_to_files(tmp_path: Path) -> None:
    """--save DIR writes each base64 value of a result to a file named by where it sits (with
    an extension from its first bytes) and shows the path instead."""
    from edge_runner.cli.media_args import save_binaries

    png = "iVBORw0KGgo="  # the PNG signature
    out = save_binaries(
        [{"id": "r", "mask": {"base64": png}}, {"base64": "aGk=", "url": "https://e.com/x"}, 3],
        tmp_path,
    )
    assert out == [
        {"id": "r", "mask": {"file": str(tmp_path / "output-0-mask.png")}},
        {"file": str(tmp_path / "output-1.bin"), "url": "https://e.com/x"},
        3,
    ]
    assert (tmp_path / "output-1.bin").read_bytes() == b"hi"
    assert (tmp_path / "output-0-mask.png").read_bytes().startswith(b"\x89PNG")
