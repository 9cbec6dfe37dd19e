"""Clarifai model folders (tests/clarifai_corpus/), served unchanged through the whole path.

The folders are transcribed from Clarifai's pages as its users write them: their imports,
requirements.txt and config.yaml. Each is served by a real runner through the real tunnel and
called over HTTP. The suite runs this without the clarifai package (the compatibility layer
answers the imports); `make test-clarifai` runs the same file with the package installed.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_runner.compat import clarifai as compat
from edge_runner.models.checkpoints import CHECKPOINTS_ENV
from tests.conftest import ROOT, Stack
from tests.fakes.openai_server import FakeOpenAIServer

CORPUS = ROOT / "tests" / "clarifai_corpus"

#: the folders that use the data types (Text, Image, Concept, Region, ...)
needs_data_types = pytest.mark.skipif(
    importlib.util.find_spec("edge_runner.models.data_types") is None,
    reason="edge_runner.models.data_types is not here yet (issue 16's data types)",
)

#: the folders that load checkpoints: with the real package, ModelBuilder downloads from the hub
needs_local_checkpoints = pytest.mark.skipif(
    compat.real_clarifai_installed(),
    reason="the installed clarifai's ModelBuilder downloads checkpoints from the hub: offline",
)


def b64(data: bytes) -> dict[str, str]:
    """The JSON form of bytes, an Image, Audio or Video."""
    return {"base64": base64.b64encode(data).decode()}


def serve(stack: Stack, name: str) -> None:
    """Start a runner serving the corpus folder ``name``, unchanged."""
    stack.start_runner(CORPUS / name)


def post(stack: Stack, model_id: str, method: str, **args: object) -> object:
    """Call a unary method over HTTP; its output."""
    r = httpx.post(
        f"{stack.api_base}/v2/models/{model_id}/{method}", headers=stack.headers, json=args
    )
    assert r.status_code == 200, r.text
    return r.json()["output"]


#: the base classes Clarifai folders import, one of which each folder's model.py names
BASES = (
    "from clarifai.runners.models.model_class import ModelClass",
    "from clarifai.runners.models.mcp_class import MCPModelClass",
    "from clarifai.runners.models.openai_class import OpenAIModelClass",
)


def test_corpus_has_ten_folders_as_clarifai_writes_them() -> None:
    """At least ten folders, each with config.yaml, requirements.txt and 1/model.py."""
    folders = sorted(p for p in CORPUS.iterdir() if p.is_dir())
    assert len(folders) >= 10
    for folder in folders:
        assert {"config.yaml", "requirements.txt"} <= {p.name for p in folder.iterdir()}
        source = (folder / "1" / "model.py").read_text()
        assert any(base in source for base in BASES), folder
        assert "edge_runner" not in source


def test_hello_world_with_param(stack: Stack) -> None:
    """Clarifai's hello-world: Param default, unary and streamed answers."""
    serve(stack, "hello-world")
    assert post(stack, "my-uploaded-model", "predict", text1="Hi ") == "Hi Hello World"
    assert post(stack, "my-uploaded-model", "predict", text1="a", text2="b") == "ab"
    with stack.client() as client:
        chunks = list(client.generate("my-uploaded-model", "generate", text1="x"))
        model = client.model("my-uploaded-model")
    assert chunks == [f"xGenerate Hello World {i}" for i in range(10)]
    predict = next(m for m in model["methods"] if m["name"] == "predict")
    assert predict["params"][1]["default"] == "Hello World"


def test_hello_world_stream_in(stack: Stack) -> None:
    """Clarifai's hello-world ``stream(input_iterator: Iterator[str])``, unchanged: each input
    item is answered as it comes, through the control plane and the tunnel."""
    serve(stack, "hello-world")
    with stack.client() as client:
        model = client.model("my-uploaded-model")
        out = list(client.stream("my-uploaded-model", "stream", ["a", "b", "c"]))
    stream = next(m for m in model["methods"] if m["name"] == "stream")
    assert stream["kind"] == "bidi"
    assert out == [f"{x}Stream Hello World {i}" for i, x in enumerate("abc")]


@needs_data_types
def test_streaming_generate(stack: Stack) -> None:
    """A generate of Text with Param defaults streams each Text."""
    serve(stack, "streaming-generate")
    with stack.client() as client:
        words = list(client.generate("streaming-text", "generate", prompt={"text": "say"}))
        numbers = list(client.generate("streaming-text", "count", n=2))
    assert words == [{"text": "say alpha"}, {"text": "say beta"}, {"text": "say gamma"}]
    assert numbers == [0, 1]


def test_primitives(stack: Stack) -> None:
    """float, int, bool, str and bytes in and out."""
    serve(stack, "primitives")
    assert post(stack, "bmi-calculator", "calculate_bmi", height_cm=200, weight_kg=80) == 20.0
    assert post(stack, "bmi-calculator", "is_adult") is True
    assert post(stack, "bmi-calculator", "is_adult", user_age=18, strict=True) is False
    assert post(stack, "bmi-calculator", "shout") == "GENERATE..."
    assert post(stack, "bmi-calculator", "reverse_bytes", file_bytes=b64(b"abc")) == b64(b"cba")


@needs_data_types
def test_dict_list_tuple(stack: Stack) -> None:
    """Dict[str, float] -> Dict[str, str]; List[Text] -> Tuple[List[Text], Dict]; List[str]."""
    serve(stack, "containers")
    assert post(stack, "document-tools", "configure_model", params={"threshold": 0.7}) == {
        "status": "success",
        "new_threshold": "0.7",
    }
    docs = [{"text": "one"}, {"text": "two"}]
    assert post(stack, "document-tools", "analyze_document", doc=docs) == [docs, {"docs": 2.0}]
    assert post(stack, "document-tools", "word_lengths", words=["ab", "c"]) == [2, 1]


@needs_data_types
def test_classifier_with_concepts(stack: Stack) -> None:
    """An image classifier labels with config.yaml's concepts, best first."""
    serve(stack, "image-classifier")
    concepts = post(stack, "image-classifier", "predict", image=b64(b"\x89PNG cat"))
    assert isinstance(concepts, list)
    assert sorted(c["name"] for c in concepts) == ["bicycle", "bus", "person"]
    assert sorted(c["id"] for c in concepts) == ["0", "1", "2"]
    values = [c["value"] for c in concepts]
    assert values == sorted(values, reverse=True) and abs(sum(values) - 1) < 1e-6


@needs_data_types
def test_detector_returns_regions(stack: Stack) -> None:
    """A detector's Regions come back with their boxes and concepts."""
    serve(stack, "object-detector")
    regions = post(stack, "object-detector", "predict", image=b64(b"\xff\xd8 jpeg"))
    assert isinstance(regions, list)
    boxes = [r["box"] for r in regions]
    # approx: with the clarifai package installed, its Region keeps the box as float32
    assert boxes == [pytest.approx([0.1, 0.2, 0.4, 0.8]), pytest.approx([0.6, 0.3, 0.9, 0.7])]
    assert [[c["name"] for c in r["concepts"]] for r in regions] == [["cat"], ["dog"]]
    assert post(stack, "object-detector", "predict", image={"base64": ""}) == []


@needs_local_checkpoints
def test_checkpoints_are_loaded_from_a_local_dir(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """checkpoints in config.yaml: ModelBuilder.download_checkpoints finds them locally."""
    place = tmp_path / "ck" / "edge-runner" / "tiny-vocab"
    place.mkdir(parents=True)
    (place / "vocab.json").write_text(json.dumps({"hello": 1, "world": 2}))
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path / "ck"))
    serve(stack, "checkpoints")
    assert post(stack, "tiny-vocab", "predict", word="world") == 2
    assert post(stack, "tiny-vocab", "predict", word="nope") == -1


@needs_data_types
def test_every_data_type_in_and_out(stack: Stack) -> None:
    """Text, Image, Audio, Video, Concept, Region, Frame, bytes and List[Image] both ways."""
    serve(stack, "all-data-types")
    assert post(stack, "all-data-types", "text", text={"text": "hi"}) == {"text": "HI"}
    assert post(stack, "all-data-types", "image", image=b64(b"abc")) == b64(b"cba")
    assert post(stack, "all-data-types", "audio", audio=b64(b"wav")) == b64(b"wav!")
    assert post(stack, "all-data-types", "video", video=b64(b"mp4")) == b64(b"mp4mp4")
    assert post(stack, "all-data-types", "raw", data=b64(b"abc")) == b64(b"ABC")
    concept = post(stack, "all-data-types", "concept", concept={"name": "cat", "value": 0.25})
    assert isinstance(concept, dict)
    assert (concept["name"], concept["value"]) == ("cat", 0.75)
    region = post(
        stack,
        "all-data-types",
        "region",
        region={"box": [0, 0, 1, 1], "concepts": [{"name": "dog", "value": 0.5}]},
    )
    assert isinstance(region, dict)
    assert region["box"] == [0, 0, 1, 1]
    assert [c["name"] for c in region["concepts"]] == ["dog", "checked"]
    frame = post(stack, "all-data-types", "frame", frame={"time": 1.5, "image": b64(b"f")})
    assert isinstance(frame, dict)
    assert (frame["time"], frame["image"]) == (2.5, b64(b"f"))
    images = [b64(b"a"), b64(b"bcd")]
    concepts = post(stack, "all-data-types", "images_to_concepts", images=images)
    assert isinstance(concepts, list)
    assert [(c["name"], c["value"]) for c in concepts] == [("image-0", 1.0), ("image-1", 3.0)]


@needs_data_types
def test_batch_list_input(stack: Stack) -> None:
    """List[Image] in, List[str] out; a Text classifier answers one Text."""
    serve(stack, "batch")
    images = [b64(b"a"), b64(b"bb"), b64(b"ccc")]
    assert post(stack, "text-classifier", "predict_images", images=images) == [
        "1 bytes",
        "2 bytes",
        "3 bytes",
    ]
    assert post(stack, "text-classifier", "predict", text={"text": "Great product"}) == 1.0


@needs_data_types
def test_named_fields(stack: Stack) -> None:
    """NamedFields in (a metadata object) and out (summary, sentiment, topics)."""
    serve(stack, "named-fields")
    out = post(
        stack,
        "document-metadata",
        "process_document",
        content={"text": "a b c d"},
        metadata={"author": "Ada", "title": "Notes", "page_count": 3, "keywords": ["x", "y", "z"]},
    )
    assert out == {
        "summary": {"text": "Notes by Ada: a b c"},
        "sentiment": 0.5,
        "topics": ["x", "y"],
    }


def test_local_test_folder_passes_model_test(capsys: pytest.CaptureFixture[str]) -> None:
    """`edge-runner model test` runs the folder's test() (Param, logger, an import inside)."""
    from edge_runner.cli.main import main

    assert main(["model", "test", str(CORPUS / "local-test")]) == 0
    assert "PASS  test" in capsys.readouterr().out


def test_local_test_folder_serves(stack: Stack) -> None:
    """The same folder serves: Param choices default, and an import inside a method."""
    serve(stack, "local-test")
    assert post(stack, "tested-model", "predict", name="Ada") == "Hi Ada!"
    assert post(stack, "tested-model", "lazy", text="abc") == "cba"


def test_param_rules_reach_every_surface_and_are_enforced(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Param description/choices/min/max show in the listing and `models -o json`; a 400 else."""
    from edge_runner.cli.main import main

    serve(stack, "text-styler")
    assert post(stack, "text-styler", "predict", text="hi", style="upper", repeat=2) == "HI HI"
    with stack.client() as client:
        params = {p["name"]: p for p in client.model("text-styler")["methods"][0]["params"]}
    assert params["style"]["description"] == "How to style the text"
    assert params["style"]["choices"] == ["plain", "upper", "title"]
    assert (params["repeat"]["min_value"], params["repeat"]["max_value"]) == (1, 5)
    assert "choices" not in params["text"] and "description" not in params["text"]

    monkeypatch.setenv("EDGE_RUNNER_API_BASE", stack.api_base)
    monkeypatch.setenv("EDGE_RUNNER_PAT", stack.token)
    capsys.readouterr()
    assert main(["models", "-o", "json"]) == 0
    (listed,) = [m for m in json.loads(capsys.readouterr().out) if m["id"] == "text-styler"]
    assert listed["methods"][0]["params"][1:] == [
        params["style"],
        params["repeat"],
        params["temperature"],
    ]

    for args, words in (
        ({"style": "italic"}, 'must be one of "plain", "upper", "title"; got "italic"'),
        ({"repeat": 6}, "must be between 1 and 5; got 6"),
        ({"temperature": -0.1}, "must be between 0 and 1; got -0.1"),
    ):
        r = httpx.post(
            f"{stack.api_base}/v2/models/text-styler/predict",
            headers=stack.headers,
            json={"text": "hi", **args},
        )
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        (name,) = args
        assert error["code"] == "INVALID_ARGUMENT" and error["param"] == name
        assert error["message"] == f"argument '{name}' {words}"


def test_param_rules_in_the_mcp_tool_schema(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """MCP describe_model gives each Param's description, enum and minimum/maximum."""
    import asyncio

    pytest.importorskip("mcp")
    from mcp import Client as McpClient

    from edge_runner.mcp_tools import build_server

    serve(stack, "text-styler")
    monkeypatch.setenv("EDGE_RUNNER_API_BASE", stack.api_base)
    monkeypatch.setenv("EDGE_RUNNER_PAT", stack.token)

    async def describe() -> Any:
        async with McpClient(build_server()) as client:
            result = await client.call_tool("describe_model", {"model": "text-styler"})
            assert not result.is_error
            return result.structured_content

    (method,) = asyncio.run(describe())["methods"]
    schemas = {p["name"]: p["schema"] for p in method["parameters"]}
    assert schemas["style"] == {
        "type": "string",
        "description": "How to style the text",
        "enum": ["plain", "upper", "title"],
    }
    assert schemas["repeat"]["minimum"] == 1 and schemas["repeat"]["maximum"] == 5


def test_fastmcp_server_at_v2_mcp(stack: Stack) -> None:
    """Clarifai's MCP folder (a fastmcp.FastMCP returned by an MCPModelClass), unchanged, with
    the official MCP client at /v2/mcp/{id}: tools listed and called (one raises), a resource
    and a resource template read, a prompt got."""
    import asyncio

    pytest.importorskip("fastmcp")
    httpx2 = pytest.importorskip("httpx2")
    from mcp import Client as McpClient
    from mcp.client.streamable_http import streamable_http_client

    from edge_runner.backends.factory import backend_for_folder

    stack.start_runner(backend=backend_for_folder(CORPUS / "mcp-server"))
    url = f"{stack.api_base}/v2/mcp/my-first-mcp-server"

    async def session() -> dict[str, Any]:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {stack.token}"}) as http,
            McpClient(streamable_http_client(url, http_client=http)) as client,
        ):
            return {
                "tools": await client.list_tools(),
                "sum": await client.call_tool("calculate_sum", {"a": 2, "b": "3.5"}),
                "weather": await client.call_tool("weather", {"city": "Paris"}),
                "zero": await client.call_tool("divide", {"a": 1, "b": 0}),
                "half": await client.call_tool("divide", {"a": 1, "b": 2}),
                "resources": await client.list_resources(),
                "templates": await client.list_resource_templates(),
                "version": await client.read_resource("config://version"),
                "paris": await client.read_resource("weather://paris/current"),
                "prompts": await client.list_prompts(),
                "prompt": await client.get_prompt("summarize_request", {"text": "edge runners"}),
            }

    out = asyncio.run(asyncio.wait_for(session(), 30))

    def text(result: Any) -> str:
        return "".join(getattr(c, "text", "") for c in result.content)

    tools = {t.name: t for t in out["tools"].tools}
    assert sorted(tools) == ["calculate_sum", "divide", "weather"]
    assert tools["weather"].description == "Get the current weather of a city"
    city = tools["weather"].input_schema["properties"]["city"]
    assert city["description"] == "The city to get the weather for"
    assert text(out["sum"]) == "5.5" and not out["sum"].is_error
    assert text(out["weather"]) == "The weather in Paris is sunny, 22°C."
    assert out["zero"].is_error and "cannot divide by zero" in text(out["zero"])
    assert not out["half"].is_error and out["half"].structured_content == {"result": 0.5}
    assert [str(r.uri) for r in out["resources"].resources] == ["config://version"]
    (template,) = out["templates"].resource_templates
    assert template.uri_template == "weather://{city}/current"
    assert out["version"].contents[0].text == "2.0.1"
    assert json.loads(out["paris"].contents[0].text) == {
        "city": "Paris",
        "temperature": 22,
        "condition": "sunny",
    }
    assert [p.name for p in out["prompts"].prompts] == ["summarize_request"]
    (message,) = out["prompt"].messages
    assert message.role == "user"
    assert message.content.text == "Please summarize the following text:\n\nedge runners"


def test_an_mcp_folders_load_model_runs_and_no_bridge_starts(tmp_path: Path) -> None:
    """A load_model() calling super().load_model() runs; with the clarifai package its
    MCPModelClass starts no bridge of its own (the runner hosts the server)."""
    import shutil
    import threading

    pytest.importorskip("fastmcp")
    from edge_runner.backends.mcp_server import MCPBackend

    folder = tmp_path / "mcp-server"
    shutil.copytree(CORPUS / "mcp-server", folder)
    model = folder / "1" / "model.py"
    model.write_text(
        model.read_text().replace(
            "class MyModelClass(MCPModelClass):\n",
            "class MyModelClass(MCPModelClass):\n\n"
            "  def load_model(self):\n"
            "    super().load_model()\n"
            "    open(__file__ + '.loaded', 'w').close()\n",
        )
    )
    backend = MCPBackend(folder)
    backend.load()
    try:
        assert (folder / "1" / "model.py.loaded").exists()
        names = [t.name for t in threading.enumerate()]
        assert "MCP-background-loop" not in names  # clarifai's bridge thread
    finally:
        backend.close()


def test_openai_wrapper_serves_v1_and_its_methods(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clarifai's OpenAIModelClass folder (its vllm/lmstudio template, pointed at a running
    server), unchanged: /v1 chat whole and streamed through its transports, its own predict
    and generate on /v2. The server is the labelled fake OpenAI engine (it echoes the last
    message); tests/integration/test_openai_class.py runs the folder against llama.cpp too."""
    with FakeOpenAIServer(["served-model"]) as fake:
        fake.start().loaded.set()
        monkeypatch.setenv("LOCAL_LLM_BASE_URL", fake.url)
        monkeypatch.delenv("LOCAL_LLM_MODEL", raising=False)  # the first one it lists
        serve(stack, "openai-wrapper")
        chat = {"model": "local-llm", "messages": [{"role": "user", "content": "hi"}]}
        url = f"{stack.api_base}/v1/chat/completions"
        r = httpx.post(url, headers=stack.headers, json=chat)
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "local-llm"
        assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
        with httpx.stream(
            "POST", url, headers=stack.headers, json={**chat, "stream": True}
        ) as streamed:
            lines = [line for line in streamed.iter_lines() if line.startswith("data: {")]
        pieces = [json.loads(line[6:])["choices"][0]["delta"].get("content") for line in lines]
        assert "".join(p or "" for p in pieces) == "echo: hi"
        answer = post(stack, "local-llm", "predict", prompt="ping")
        assert isinstance(answer, str) and "ping" in answer
        with stack.client() as client:
            generated = "".join(
                str(p) for p in client.generate("local-llm", "generate", prompt="pong")
            )
        assert "pong" in generated
        assert fake.requests.count("/v1/chat/completions") == 4
