"""config.yaml's Clarifai sections: num_threads, concepts, checkpoints, and warned-about keys."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from edge_runner.backends.python_model import PythonModelBackend
from edge_runner.daemons.runner import DEFAULT_POOL_SIZE, RunnerConfig, build_runner
from edge_runner.errors import ModelFolderError
from edge_runner.models import load_config, load_model_folder
from edge_runner.models.config_keys import Checkpoints, ConceptInfo

MODEL = """\
from edge_runner import ModelClass


class Labels(ModelClass):
    @ModelClass.method
    def predict(self, text: str) -> list:
        return [c.name for c in self.concepts]
"""


def write(root: Path, config: str, model: str = MODEL) -> Path:
    """A folder with this config.yaml (dedented) and model.py."""
    folder = root / "m"
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(textwrap.dedent(config))
    (folder / "1" / "model.py").write_text(model)
    return folder


CLASSIFIER = """\
    model:
      id: "classifier"
      user_id: "alice"
      app_id: "vision"
      model_type_id: "visual-classifier"
    num_threads: 3
    concepts:
      - id: '0'
        name: bus
      - id: '1'
        name: person
    checkpoints:
      type: "huggingface"
      repo_id: "google/vit-base-patch16-224"
      hf_token: "hf_xxx"
      when: "runtime"
"""


def test_clarifai_sections_are_read(tmp_path: Path) -> None:
    """num_threads, concepts and checkpoints are parsed; user_id/app_id kept."""
    config = load_config(write(tmp_path, CLASSIFIER))
    assert (config.user_id, config.app_id, config.num_threads) == ("alice", "vision", 3)
    assert config.concepts == (ConceptInfo("0", "bus"), ConceptInfo("1", "person"))
    assert config.checkpoints == Checkpoints("huggingface", "google/vit-base-patch16-224")


def test_concepts_are_on_the_model_instance(tmp_path: Path) -> None:
    """The model sees config.yaml's concepts as self.concepts, already in load_model()."""
    model = load_model_folder(write(tmp_path, CLASSIFIER)).instantiate()
    assert model.predict("x") == ["bus", "person"]  # type: ignore[attr-defined]


def _pool_size(backend: PythonModelBackend, pool_size: int | None = None) -> int:
    """The pool a runner built for ``backend`` gets (nothing is dialled)."""
    config = RunnerConfig(
        api_base="http://127.0.0.1:9",
        token="er_rt_unused",
        enroll=False,
        runner_id="pool-test",
        pool_size=pool_size,
        local_api=False,
    )
    return build_runner(config, backend=backend).settings.pool_size


def test_num_threads_sets_the_default_pool_size(tmp_path: Path) -> None:
    """A Python folder's num_threads is the runner's pool size unless --pool-size is given."""
    assert _pool_size(PythonModelBackend(write(tmp_path, CLASSIFIER))) == 3
    assert _pool_size(PythonModelBackend(write(tmp_path / "flag", CLASSIFIER)), 7) == 7
    plain = write(tmp_path / "plain", "model:\n  id: plain\n")
    assert _pool_size(PythonModelBackend(plain)) == DEFAULT_POOL_SIZE


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ("num_threads: 0", "num_threads must be a whole number >= 1"),
        ("num_threads: many", "num_threads must be a whole number >= 1"),
        ("concepts: cat", "concepts must be a list"),
        ("concepts: [{label: cat}]", r"concepts\[0\] must be a mapping with id and name"),
        ("checkpoints: {type: huggingface}", "checkpoints.repo_id is missing"),
        ("checkpoints: {repo_id: a/b, when: later}", "checkpoints.when must be one of"),
    ],
)
def test_bad_sections_name_the_file_and_fix(tmp_path: Path, config: str, match: str) -> None:
    """A malformed section fails loading with the file named and what is expected."""
    folder = write(tmp_path, f"model:\n  id: m\n{config}\n")
    with pytest.raises(ModelFolderError, match=match) as info:
        load_config(folder)
    assert str(folder / "config.yaml") in str(info.value)


def test_ignored_and_unknown_keys_are_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each ignored or unknown key gets one warning, naming what to use instead."""
    folder = write(
        tmp_path,
        """\
        model:
          id: m
          model_version: v2
        compute:
          instance: g5.xlarge
        build_info:
          python_version: "2.7"
          image: custom
        num_thread: 4
        """,
    )
    with caplog.at_level(logging.WARNING, logger="edge_runner.models"):
        load_config(folder)
        load_config(folder)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5, messages
    text = "\n".join(messages)
    assert "`compute` is ignored here" in text and "--gpus" in text
    assert "`num_thread` is not a key edge-runner knows" in text and "num_threads" in text
    assert "`model.model_version` is ignored here" in text
    assert "build_info.python_version is 2.7 but the runner runs Python" in text
    assert "`build_info.image` is ignored here" in text


def test_checkpoint_keys_not_used_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """hf_token (nothing is downloaded) and unknown checkpoints keys get one warning each."""
    with caplog.at_level(logging.WARNING, logger="edge_runner.models"):
        load_config(
            write(
                tmp_path,
                CLASSIFIER.replace('when: "runtime"', 'when: "runtime"\n      revison: main'),
            )
        )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "`checkpoints.hf_token` is not used here" in text and "--checkpoints DIR" in text
    assert "`checkpoints.revison` is not a key edge-runner knows" in text


def test_a_plain_folder_gets_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The hello example (model, inference_compute_info, build_info) loads without a warning."""
    with caplog.at_level(logging.WARNING):
        load_config(Path(__file__).resolve().parents[2] / "examples" / "hello")
    assert not [r for r in caplog.records if "build_info" not in r.getMessage()]
