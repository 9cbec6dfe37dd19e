"""Checks of this user's files: the contexts file, the secret store, the data directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge_runner.config.paths import config_dir, config_file, data_dir, runtime_dir
from edge_runner.config.resolve import ENV_API_BASE, ENV_PAT
from edge_runner.config.secrets import ENV_SECRET_BACKEND
from edge_runner.doctor._core import Check, Reporter, describe_error
from edge_runner.doctor._env import Env
from edge_runner.errors import ConfigError

__all__ = [
    "check_config_file",
    "check_config_permissions",
    "check_data_dir",
    "check_keyring",
    "check_secret_files",
]

_NEW_CONTEXT = (
    "run `edge-runner up` (a local control plane and the `local` context) or "
    "`edge-runner login API_BASE` (a remote one)"
)
_NOT_POSIX = "file modes are not checked on this OS (not POSIX)"


def _who(bits: int) -> str:
    """``group``, ``others`` or ``group and others`` for the group/other part of a mode."""
    names = [n for n, mask in (("group", 0o070), ("others", 0o007)) if bits & mask]
    return " and ".join(names)


def _foreign_owner(path: Path, st: os.stat_result) -> str | None:
    uid = os.getuid()
    if st.st_uid != uid:
        return f"{path} belongs to uid {st.st_uid}, not to you (uid {uid})"
    return None


def check_config_file(env: Env, r: Reporter) -> Check:
    """The contexts file exists and parses."""
    path = config_file()
    if not path.exists():
        if os.environ.get(ENV_API_BASE) and os.environ.get(ENV_PAT):
            return r.ok(f"no contexts file at {path}; {ENV_API_BASE} and {ENV_PAT} are set")
        return r.warn(f"no contexts file at {path} (no contexts yet)", _NEW_CONTEXT)
    if not path.is_file():
        return r.fail(f"{path} is not a file", f"move {path} aside, then {_NEW_CONTEXT}")
    try:
        contexts = env.contexts()
    except ConfigError as exc:
        return r.fail(
            str(exc),
            f"fix {path} (`edge-runner context edit` opens it), or move it aside and "
            "run `edge-runner up`",
        )
    names = ", ".join(sorted(contexts.contexts)) or "none"
    return r.ok(f"{path}: contexts {names}; current: {contexts.current or '-'}")


def check_config_permissions(env: Env, r: Reporter) -> Check:
    """Nobody else can change the contexts file (it says where tokens are sent)."""
    if os.name != "posix":
        return r.skip(_NOT_POSIX)
    path = config_file()
    directory = path.parent
    ours = directory == config_dir()  # a folder chosen with EDGE_RUNNER_CONFIG is the user's own
    found: list[str] = []
    warnings: list[tuple[str, str]] = []
    for target, is_dir in ((directory, True), (path, False)):
        if is_dir and not ours:
            continue
        try:
            st = target.stat()
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        wanted = "700" if is_dir else "600"
        foreign = _foreign_owner(target, st)
        if foreign:
            return r.fail(foreign, f"chown {os.getuid()} {target} (as root), then chmod {wanted}")
        if mode & 0o022:
            return r.fail(
                f"{target} is writable by {_who(mode & 0o022)} (mode {mode:04o}): they could "
                "point a context at their own server and collect your token",
                f"chmod {wanted} {target}",
            )
        if mode & 0o044:
            warnings.append(
                (
                    f"{target} is readable by {_who(mode & 0o044)} (mode {mode:04o})",
                    f"chmod {wanted} {target}",
                )
            )
        found.append(f"{target} {mode:04o}")
    if warnings:
        detail = "; ".join(w for w, _ in warnings)
        fixes = " && ".join(f for _, f in warnings)
        return r.warn(f"{detail}; it names your control planes and users", fixes)
    if not found:
        return r.skip(f"no contexts file at {path} yet")
    return r.ok(", ".join(found))


def check_keyring(env: Env, r: Reporter) -> Check:
    """Which secret store holds the tokens: the OS keyring, or 0600 files (and why)."""
    mode = (os.environ.get(ENV_SECRET_BACKEND) or "auto").strip().lower()
    try:
        store = env.store()
    except ConfigError as exc:
        return r.fail(str(exc), f"unset {ENV_SECRET_BACKEND}, or set it to auto, keyring or file")
    before = store.backend_name
    if before.startswith("keyring:"):
        name = _context_name(env) or "edge-runner-doctor"
        try:
            store.get(name)  # a read: a locked keyring shows itself here
        except ConfigError as exc:
            return r.fail(str(exc), f"unlock the OS keyring, or unset {ENV_SECRET_BACKEND}")
        after = store.backend_name
        if after != before:
            return r.warn(
                f"the OS keyring ({before.removeprefix('keyring:')}) failed a read or did not "
                f"answer within {store.timeout:g} s; secrets fall back to 0600 files in "
                f"{after.removeprefix('file:')}",
                "unlock the keyring (log in to the desktop session, or `gnome-keyring-daemon "
                f"--unlock`), or set {ENV_SECRET_BACKEND}=file to use the files on purpose",
            )
        return r.ok(f"OS keyring {before.removeprefix('keyring:')}")
    directory = before.removeprefix("file:")
    if mode == "file":
        return r.ok(f"0600 files in {directory} ({ENV_SECRET_BACKEND}=file)")
    return r.warn(
        f"no usable OS keyring ({_keyring_offer()}); tokens go to 0600 files in {directory}",
        "install and unlock an OS keyring (Secret Service: gnome-keyring or KWallet; macOS "
        f"Keychain; Windows Credential Locker), or set {ENV_SECRET_BACKEND}=file to choose "
        "the file store on purpose",
    )


def _context_name(env: Env) -> str | None:
    try:
        ctx = env.context()
    except Exception:  # the context check reports it
        return None
    return ctx.name if ctx is not None else None


def _keyring_offer() -> str:
    """What the keyring library found, named by class (why it was not used)."""
    import keyring
    import keyring.backends.chainer

    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken keyring configuration is itself the answer
        return f"keyring failed: {describe_error(exc)}"
    if isinstance(backend, keyring.backends.chainer.ChainerBackend):
        chained = [_class(b) for b in backend.backends]
        return f"keyring chains {', '.join(chained) or 'nothing'}"
    return f"keyring offers {_class(backend)}, which is not a real OS keyring"


def _class(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def check_secret_files(env: Env, r: Reporter) -> Check:
    """The 0600 file store: every token file 0600, their directory 0700, all yours."""
    if os.name != "posix":
        return r.skip(_NOT_POSIX)
    directory = data_dir() / "secrets"
    try:
        st = directory.lstat()
    except FileNotFoundError:
        return r.skip(f"no secret files ({directory} does not exist)")
    if not stat.S_ISDIR(st.st_mode):
        return r.fail(f"{directory} is not a directory", f"move {directory} aside and log in again")
    foreign = _foreign_owner(directory, st)
    if foreign:
        return r.fail(foreign, f"chown {os.getuid()} {directory} (as root), then chmod 700")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        return r.fail(
            f"{directory} is writable by {_who(mode & 0o022)} (mode {mode:04o})",
            f"chmod 700 {directory}",
        )
    files = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    for path in files:
        problem = _secret_file_problem(path)
        if problem is not None:
            return r.fail(*problem)
    if mode & 0o077:
        return r.warn(
            f"{directory} is listable by {_who(mode & 0o077)} (mode {mode:04o}); its "
            f"{len(files)} file(s) are 0600",
            f"chmod 700 {directory} (edge-runner also does this the next time it uses it)",
        )
    return r.ok(f"{len(files)} token file(s) in {directory}, all 0600; the directory is 0700")


def _secret_file_problem(path: Path) -> tuple[str, str] | None:
    """``(detail, fix)`` when a token file is unsafe, else None."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return (
            f"{path} is a symbolic link (edge-runner refuses to read a token through one)",
            f"rm {path}, then `edge-runner login --context {path.stem}`",
        )
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file", f"move {path} out of {path.parent}"
    foreign = _foreign_owner(path, st)
    if foreign:
        return foreign, f"rm {path} (as root), then `edge-runner login --context {path.stem}`"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        leaked = (
            "; others could read the token: revoke it (`edge-runner token list`, then "
            "`edge-runner token revoke ID`) and log in again"
            if mode & 0o044
            else ""
        )
        return (
            f"{path} is open to {_who(mode & 0o077)} (mode {mode:04o}; edge-runner refuses "
            "to use it)",
            f"chmod 600 {path}{leaked}",
        )
    return None


def check_data_dir(env: Env, r: Reporter) -> Check:
    """The data and runtime dirs, and the private files in them, are not open to others."""
    if os.name != "posix":
        return r.skip(_NOT_POSIX)
    data = data_dir()
    if not data.exists():
        return r.skip(f"{data} does not exist yet (`edge-runner up` creates it)")
    checked = []
    for directory in (data, runtime_dir()):
        try:
            st = directory.stat()
        except FileNotFoundError:
            continue
        foreign = _foreign_owner(directory, st)
        if foreign:
            return r.fail(foreign, f"chown -R {os.getuid()} {directory} (as root)")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            return r.fail(
                f"{directory} is writable by {_who(mode & 0o022)} (mode {mode:04o}): they could "
                "replace the registry, keys or runner files in it",
                f"chmod go-w {directory}",
            )
        checked.append(f"{directory} {mode:04o}")
    control = data / "control"
    private = [control / "admin-token", *sorted((control / "tls").glob("*.key"))]
    for path in private:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            return r.fail(
                f"{path} is open to {_who(mode & 0o077)} (mode {mode:04o}); it is a secret",
                f"chmod 600 {path}",
            )
        checked.append(f"{path.name} 0600")
    return r.ok(", ".join(checked))
