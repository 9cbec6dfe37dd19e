"""Modal screens: confirm an action, the key help, the new-context form, a runner's detail."""

from __future__ import annotations

import json

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from edge_runner.views import RunnerView

__all__ = ["ConfirmScreen", "ContextForm", "HelpScreen", "RunnerDetail", "help_text"]


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; ``y``/Enter on Yes confirms, ``n``/Esc cancels."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(classes="modal")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(escape(self.question), id="confirm-question")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        """The safe answer has the focus."""
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button answers."""
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        """A key answers."""
        self.dismiss(yes)


def help_text(
    app_bindings: list[tuple[str, str]], screens: dict[str, list[tuple[str, str]]]
) -> str:
    """Every key, grouped: the app's, then each screen's."""
    out = ["[b]everywhere[/b]"]
    out += [f"  {escape(key):<10} {escape(what)}" for key, what in app_bindings]
    for name, keys in screens.items():
        out.append(f"[b]{escape(name)}[/b]")
        out += [f"  {escape(key):<10} {escape(what)}" for key, what in keys]
    return "\n".join(out)


class HelpScreen(ModalScreen[None]):
    """All the keys; any of Esc, ``?`` or ``q`` closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, text: str) -> None:
        super().__init__(classes="modal")
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static(self.text, id="help-text")
            yield Static("[dim]Esc or ? closes[/dim]")

    def action_close(self) -> None:
        """Close."""
        self.dismiss(None)


class ContextForm(ModalScreen["dict[str, str] | None"]):
    """A new context: name, API base, user and token (the token goes to the secret store)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form"):
            yield Label("[b]new context[/b]")
            yield Input(placeholder="name, e.g. lab", id="ctx-name")
            yield Input(placeholder="API base, e.g. http://127.0.0.1:8100", id="ctx-api-base")
            yield Input(placeholder="user id (default: local)", id="ctx-user")
            yield Input(placeholder="token (kept in the keyring)", password=True, id="ctx-token")
            yield Static("", id="ctx-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def _value(self, name: str) -> str:
        return self.query_one(f"#ctx-{name}", Input).value.strip()

    def _submit(self) -> None:
        name, api_base = self._value("name"), self._value("api-base")
        problem = ""
        if not name:
            problem = "a name is needed"
        elif not api_base.startswith(("http://", "https://")):
            problem = "the API base must start with http:// or https://"
        if problem:
            self.query_one("#ctx-error", Static).update(problem)
            return
        self.dismiss(
            {
                "name": name,
                "api_base": api_base,
                "user_id": self._value("user") or "local",
                "token": self._value("token"),
            }
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a box moves on; in the last one it saves."""
        if event.input.id == "ctx-token":
            self._submit()
        else:
            self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Save or cancel."""
        if event.button.id == "save":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)


class RunnerDetail(ModalScreen[None]):
    """Everything the control plane knows of one runner."""

    BINDINGS = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, runner: RunnerView) -> None:
        super().__init__(classes="modal")
        self.runner = runner

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog detail"):
            yield Static(f"[b]runner {escape(self.runner['id'])}[/b]")
            yield Static(
                escape(json.dumps(self.runner, indent=2, sort_keys=True)), id="detail-body"
            )
            yield Static("[dim]Esc closes[/dim]")

    def action_close(self) -> None:
        """Close."""
        self.dismiss(None)
