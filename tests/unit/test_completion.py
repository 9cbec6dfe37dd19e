"""Shell completion: scripts generated from the live parser, driven in real bash, zsh and fish.

bash: the script is sourced in a real ``bash`` and ``_edge_runner`` is called with
``COMP_WORDS``/``COMP_CWORD`` set, as bash does on TAB. zsh: a real interactive zsh in a
``zpty`` pseudo-terminal gets the words and a TAB, with ``compadd`` wrapped to print what it
would offer (the technique of zsh-capture-completion, by Valodim, MIT licence). fish:
``complete -C``. zsh and fish tests skip where the shell is not installed (Debian:
``apt-get install zsh fish``). Expected candidates come from the parser, so a command added
anywhere is checked too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_runner.cli._parser_tree import Command, ValueKind, command_tree, complete_as
from edge_runner.cli.completion import bash_script, generate, identifier
from edge_runner.cli.main import build_parser
from edge_runner.config.contexts import Context, ContextsFile
from tests.conftest import MS

VENV_BIN = str(Path(sys.executable).parent)
TIMEOUT = 20_000 * MS
needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
needs_fish = pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")


@pytest.fixture(scope="module")
def tree() -> Command:
    """The real parser as a tree."""
    return command_tree(build_parser())


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three scripts, generated once, as files."""
    folder = tmp_path_factory.mktemp("completion")
    out = {}
    for shell in ("bash", "zsh", "fish"):
        out[shell] = folder / f"edge-runner.{shell}"
        out[shell].write_text(generate(shell, build_parser()))
    return out


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cwd with a model folder, a plain file, and two contexts in its own EDGE_RUNNER_HOME."""
    (tmp_path / "work" / "models" / "hello").mkdir(parents=True)
    (tmp_path / "work" / "notes.txt").write_text("not a folder\n")
    monkeypatch.setenv("EDGE_RUNNER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EDGE_RUNNER_CONFIG", raising=False)
    contexts = ContextsFile.load()
    contexts.put(Context("dev", "http://127.0.0.1:7070", "admin"), make_current=True)
    contexts.put(Context("lab", "http://127.0.0.1:7071", "admin"))
    contexts.save()
    other = ContextsFile(path=tmp_path / "other.yaml")
    other.put(Context("elsewhere", "http://127.0.0.1:7072", "admin"))
    other.save()
    return tmp_path / "work"


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _answers(argv: list[str], program: str, cwd: Path | None) -> list[list[str]]:
    """Run ``program`` in a shell; its output split at each ``<end>`` line, blank lines out."""
    run = subprocess.run(
        [*argv, program], capture_output=True, text=True, cwd=cwd, env=_env(), timeout=TIMEOUT
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    blocks = run.stdout.split("<end>\n")[:-1]
    return [[line for line in block.splitlines() if line] for block in blocks]


def bash_complete(script: Path, *queries: list[str], cwd: Path | None = None) -> list[list[str]]:
    """What bash's ``_edge_runner`` offers for each list of words (the last: the cursor's)."""
    calls = "\n".join(
        "c " + " ".join(shlex.quote(w) for w in ["edge-runner", *words]) for words in queries
    )
    program = (
        f"source {shlex.quote(str(script))}\n"
        'c() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _edge_runner;'
        " printf '%s\\n' \"${COMPREPLY[@]}\"; echo '<end>'; }\n" + calls
    )
    return _answers(["bash", "--norc", "--noprofile", "-c"], program, cwd)


def one(script: Path, words: list[str], cwd: Path | None = None) -> set[str]:
    """The candidates for one query, as a set."""
    return set(bash_complete(script, words, cwd=cwd)[0])


def _names(command: Command) -> set[str]:
    return {n for sub in command.subcommands for n in (sub.name, *sub.aliases)}


def _find(tree: Command, *path: str) -> Command:
    return next(c for c in tree.walk() if c.path == path)


# -- bash -------------------------------------------------------------------------------------


def test_bash_script_is_valid_bash(scripts: dict[str, Path]) -> None:
    """`bash -n` accepts the script and sourcing it registers the function for edge-runner."""
    run = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(scripts['bash']))}; complete -p edge-runner"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "complete -F _edge_runner edge-runner"


def test_bash_lists_top_level_commands(scripts: dict[str, Path], tree: Command) -> None:
    """An empty word after edge-runner offers every visible top-level command."""
    assert one(scripts["bash"], [""]) == _names(tree)
    assert {"up", "context", "token", "completion"} <= _names(tree)


def test_bash_completes_a_prefix(scripts: dict[str, Path]) -> None:
    """`con` completes to the commands starting with it."""
    assert one(scripts["bash"], ["con"]) == {"context", "control"}


def test_bash_offers_every_command_of_the_parser(scripts: dict[str, Path], tree: Command) -> None:
    """Every command and subcommand (aliases too) is offered after its parent's words."""
    spelled = [path for path, _ in tree.spellings() if path]
    results = bash_complete(scripts["bash"], *[[*path[:-1], ""] for path in spelled])
    missing = [" ".join(p) for p, got in zip(spelled, results, strict=True) if p[-1] not in got]
    assert missing == []
    assert len(spelled) > 30


def test_bash_nested_subcommands(scripts: dict[str, Path], tree: Command) -> None:
    """`context `, `token ` and `model ` list their own subcommands, and only those."""
    groups = ("context", "token", "model")
    results = bash_complete(scripts["bash"], *[[g, ""] for g in groups])
    for group, got in zip(groups, results, strict=True):
        assert set(got) == _names(_find(tree, group)), group
    assert {"create", "list", "use"} <= set(results[0])
    assert "init" in results[2]


def test_bash_options_of_the_current_command(scripts: dict[str, Path], tree: Command) -> None:
    """A `-` word offers the current command's options; global options stay at the top."""
    got = bash_complete(scripts["bash"], ["context", "list", "-"], ["models", "--c"], ["--de"])
    flags = {f for o in _find(tree, "context", "list").options for f in o.flags}
    assert set(got[0]) == flags
    assert {"-o", "--output", "--help"} <= set(got[0])
    assert got[1] == ["--context"]
    assert got[2] == ["--debug"]


def test_bash_completes_choices(scripts: dict[str, Path]) -> None:
    """`-o` offers its choices, also written `--output=`, and a prefix narrows them."""
    got = bash_complete(
        scripts["bash"],
        ["context", "list", "-o", ""],
        ["models", "--output", "=", ""],
        ["models", "--output", "=", "j"],
        ["token", "create", "--scope", ""],
        ["completion", ""],
    )
    assert set(got[0]) == {"table", "wide", "name", "json", "yaml"}
    assert set(got[1]) == {"table", "json"}
    assert got[2] == ["json"]
    assert set(got[3]) == {"predict", "read", "manage", "runner"}
    assert set(got[4]) == {"bash", "zsh", "fish"}


def test_bash_completes_model_folders_as_directories(
    scripts: dict[str, Path], workdir: Path
) -> None:
    """A model-folder argument offers folders only; a file option offers files."""
    got = bash_complete(
        scripts["bash"],
        ["up", ""],
        ["up", "models/"],
        ["runner", "--transport", "ws", "mo"],  # the option's value is skipped
        ["model", "init", "mo"],
        ["up", "--tls-cert", "no"],
        cwd=workdir,
    )
    assert set(got[0]) == {"models"}  # notes.txt is a file, not a folder
    assert got[1] == ["models/hello"]
    assert got[2] == ["models"]
    assert got[3] == ["models"]
    assert got[4] == ["notes.txt"]


def test_bash_completes_context_names(scripts: dict[str, Path], workdir: Path) -> None:
    """Context names come from `edge-runner context list -o name`, and honour --config."""
    got = bash_complete(
        scripts["bash"],
        ["context", "use", ""],
        ["runner", "--context", "l"],
        ["--config", str(workdir.parent / "other.yaml"), "context", "show", ""],
        cwd=workdir,
    )
    assert set(got[0]) == {"dev", "lab"}
    assert got[1] == ["lab"]
    assert got[2] == ["elsewhere"]


def test_bash_run_completes_a_command_then_files(scripts: dict[str, Path], workdir: Path) -> None:
    """`run` offers commands for CMD and then files for its arguments."""
    got = bash_complete(
        scripts["bash"], ["run", "--context", "dev", "bas"], ["run", "ls", "no"], cwd=workdir
    )
    assert "bash" in got[0]
    assert got[1] == ["notes.txt"]


def test_bash_extra_options_of_predict_take_a_value(scripts: dict[str, Path]) -> None:
    """`predict MODEL --text hi -o ` still knows -o: method arguments take a value each."""
    assert one(scripts["bash"], ["predict", "hello", "--text", "hi", "-o", ""]) == {"table", "json"}


def test_aliases_hidden_items_and_explicit_kinds(tmp_path: Path) -> None:
    """Aliases complete, SUPPRESS-ed options and commands do not, complete_as() wins."""
    parser = argparse.ArgumentParser(prog="edge-runner")
    sub = parser.add_subparsers()
    box = sub.add_parser("bundle", aliases=["bndl"], help="make a bundle")
    complete_as(box.add_argument("archive"), ValueKind.FILE)
    box.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    box.add_argument("--where", type=Path, help="output folder")
    sub.add_parser("secret", help=argparse.SUPPRESS)
    tree = command_tree(parser)
    archive = _find(tree, "bundle").positionals[0]
    assert archive.kind is ValueKind.FILE
    assert _find(tree, "bundle").aliases == ("bndl",)
    (tmp_path / "wheels.tar").write_text("")
    script = tmp_path / "fake.bash"
    script.write_text(bash_script(tree))
    got = bash_complete(script, [""], ["bndl", "-"], ["bndl", "wh"], cwd=tmp_path)
    assert set(got[0]) == {"bundle", "bndl"}
    assert set(got[1]) == {"-h", "--help", "--where"}
    assert got[2] == ["wheels.tar"]


# -- zsh --------------------------------------------------------------------------------------

_ZSH_INIT = r"""
PROMPT=
autoload -U compinit
compinit -u -d "$ZCOMPDUMP"
bindkey '^I' complete-word
null-line () { echo -E - $'\0' }
compprefuncs=( null-line )
comppostfuncs=( null-line exit )
zstyle ':completion:*' list-grouped false
zstyle ':completion:*' insert-tab false
compadd () {
    # Print what would be offered instead of offering it (-O/-A/-D only collect: pass through).
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
        builtin compadd "$@"
        return $?
    fi
    typeset -a __hits
    builtin compadd -A __hits "$@"
    local h
    for h in $__hits; do echo -E - "$h"; done
}
source "$EDGE_RUNNER_ZSH_SCRIPT"
echo ok
"""

_ZSH_CAPTURE = r"""
zmodload zsh/zpty
zpty z zsh -f -i
local line
zpty -w z "source ${(q)1}"
repeat 20; do
    zpty -r z line
    [[ $line == ok* ]] && break
done
zpty -w z "$2"$'\t'
integer tog=0
while zpty -r z; do :; done | while IFS= read -r line; do
    if [[ $line == *$'\0\r' ]]; then
        (( tog++ )) && exit 0 || continue
    fi
    (( tog )) && echo -E - $line
done
exit 2
"""


@pytest.fixture
def zsh_complete(
    scripts: dict[str, Path], tmp_path: Path
) -> Iterator[Callable[[str, Path | None], set[str]]]:
    """A function: what an interactive zsh offers on TAB after the given line."""
    init, capture = tmp_path / "init.zsh", tmp_path / "capture.zsh"
    init.write_text(_ZSH_INIT)
    capture.write_text(_ZSH_CAPTURE)

    def complete(line: str, cwd: Path | None = None) -> set[str]:
        env = {
            **_env(),
            "EDGE_RUNNER_ZSH_SCRIPT": str(scripts["zsh"]),
            "ZCOMPDUMP": str(tmp_path / "zcompdump"),
        }
        run = subprocess.run(
            ["zsh", str(capture), str(init), line],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=TIMEOUT,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        return {w.strip("\r") for w in run.stdout.splitlines() if w.strip("\r")}

    yield complete


@needs_zsh
def test_zsh_script_is_valid_zsh(scripts: dict[str, Path], tree: Command) -> None:
    """`zsh -n` accepts the script, and it defines a function for every command."""
    run = subprocess.run(["zsh", "-n", str(scripts["zsh"])], capture_output=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    text = scripts["zsh"].read_text()
    assert text.startswith("#compdef edge-runner\n")
    missing = [c.path for c in tree.walk() if f"\n{identifier(c.path)}() {{" not in text]
    assert missing == []


@needs_zsh
def test_zsh_completes_commands_options_and_values(
    zsh_complete: Callable[[str, Path | None], set[str]], tree: Command, workdir: Path
) -> None:
    """A real zsh offers commands, nested subcommands, choices, folders and context names."""
    assert zsh_complete("edge-runner con", None) == {"context", "control"}
    assert zsh_complete("edge-runner context ", None) == _names(_find(tree, "context"))
    assert zsh_complete("edge-runner context list -o ", None) == {
        "table",
        "wide",
        "name",
        "json",
        "yaml",
    }
    assert zsh_complete("edge-runner models --c", None) == {"--context"}
    assert zsh_complete("edge-runner up mo", workdir) == {"models"}
    assert zsh_complete("edge-runner context use ", workdir) == {"dev", "lab"}


# -- fish -------------------------------------------------------------------------------------


def fish_complete(script: Path, *lines: str, cwd: Path | None = None) -> list[set[str]]:
    """What fish's ``complete -C`` offers for each line (candidates without descriptions)."""
    program = f"source {shlex.quote(str(script))}\n" + "".join(
        f"complete -C{shlex.quote(line)}; echo '<end>'\n" for line in lines
    )
    blocks = _answers(["fish", "--no-config", "-c"], program, cwd)
    return [{line.split("\t")[0] for line in block} for block in blocks]


@needs_fish
def test_fish_script_is_valid_fish(scripts: dict[str, Path]) -> None:
    """`fish -n` accepts the script."""
    run = subprocess.run(["fish", "-n", str(scripts["fish"])], capture_output=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr


@needs_fish
def test_fish_completes_commands_options_and_values(
    scripts: dict[str, Path], tree: Command, workdir: Path
) -> None:
    """fish offers commands, nested subcommands, choices, folders, files and context names."""
    got = fish_complete(
        scripts["fish"],
        "edge-runner con",
        "edge-runner context ",
        "edge-runner token ",
        "edge-runner context list -o ",
        "edge-runner models --c",
        "edge-runner up mo",
        "edge-runner up --tls-cert no",
        "edge-runner context use ",
        "edge-runner --config x.yaml token l",
        cwd=workdir,
    )
    assert got[0] == {"context", "control"}
    assert got[1] == _names(_find(tree, "context"))
    assert got[2] == _names(_find(tree, "token"))
    assert got[3] == {"table", "wide", "name", "json", "yaml"}
    assert got[4] == {"--context"}
    assert got[5] == {"models/"}
    assert got[6] == {"notes.txt"}
    assert got[7] == {"dev", "lab"}
    assert got[8] == {"list"}


@needs_fish
def test_fish_offers_every_command_of_the_parser(scripts: dict[str, Path], tree: Command) -> None:
    """Every command and subcommand is offered after its parent's words."""
    spelled = [path for path, _ in tree.spellings() if path]
    lines = [" ".join(["edge-runner", *path[:-1], ""]) for path in spelled]
    got = fish_complete(scripts["fish"], *lines)
    missing = [" ".join(p) for p, found in zip(spelled, got, strict=True) if p[-1] not in found]
    assert missing == []


# -- the command ------------------------------------------------------------------------------


def test_completion_command_prints_a_script() -> None:
    """`edge-runner completion bash` prints the script; an unknown shell is a usage error."""
    run = subprocess.run(
        [sys.executable, "-m", "edge_runner", "completion", "bash"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("# bash completion for edge-runner")
    assert run.stdout == generate("bash", build_parser())
    bad = subprocess.run(
        [sys.executable, "-m", "edge_runner", "completion", "tcsh"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert bad.returncode == 2
    assert "invalid choice: 'tcsh'" in bad.stderr
