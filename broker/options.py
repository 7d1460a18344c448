"""Command lines that are wrong fail: one line naming what was not understood, the close
match, where the help is, and exit status 2.

traitlets only warns about an unknown option (``--prot 3``) and argparse prints its usage
before the error; both left a newcomer with a broker on the wrong port or a screen of text.
One place words the error for ``kernel-broker`` and its subcommands (traitlets and argparse)
and for ``llm-agent``.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points
from typing import Any, NoReturn

from traitlets import HasTraits, TraitError, TraitType
from traitlets.config import Config, Configurable
from traitlets.config.loader import (
    ArgumentError,
    DeferredConfig,
    KVArgParseConfigLoader,
    LazyConfigValue,
)

EXIT_USAGE = 2
PROVISIONERS = "jupyter_client.kernel_provisioners"  # the entry point group of provisioners


class UsageError(Exception):
    """A command line the program does not understand (exit status 2)."""


def close_match(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the closest candidate, or ``""`` when none is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean {matches[0]}?" if matches else ""


def fail(prog: str, message: str, help_hint: str) -> NoReturn:
    """Print ``prog: error: message (help_hint)`` on stderr and exit 2."""
    print(f"{prog}: error: {message} ({help_hint})", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def unknown_command(prog: str, command: str, usage: str) -> NoReturn:
    """Exit for a subcommand that ``usage`` (its ``commands:`` lines) does not list."""
    known = re.findall(r"^  (\w[\w-]*)\s", usage, flags=re.MULTILINE)
    fail(prog, f"unknown command {command!r}{close_match(command, known)}", f"{prog} --help")


def http_url(value: str) -> str:
    """argparse type of a server's URL: an empty value (unset) or http(s)://HOST[:PORT]..."""
    if value and not re.match(r"https?://[^/]", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a URL: give http://HOST:PORT/...")
    return value


class OptionParser(argparse.ArgumentParser):
    """argparse whose errors are one line, and whose unknown options get a close match."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, message, f"{self.prog} --help")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> argparse.Namespace:
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            parser = self._chosen(parsed)
            word = extra[0]
            if word.startswith("-"):
                option = word.split("=", 1)[0]
                known = parser._option_string_actions
                parser.error(f"unknown option {option}{close_match(option, known)}")
            parser.error(f"unexpected argument {word!r}")
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The subcommand's parser when one was chosen (its options are the candidates)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(parsed, action.dest or "", None) or "")
                if chosen is not None:
                    return chosen
        return self


class StrictLoader(KVArgParseConfigLoader):
    """traitlets' command-line loader, with unknown options and bad values errors."""

    class parser_class(KVArgParseConfigLoader.parser_class):  # type: ignore[misc,valid-type]
        """The loader's argparse parser, raising instead of printing its usage."""

        def error(self, message: str) -> NoReturn:
            option = re.search(r"--[\w.-]+", message)
            if option is None or option[0] in self._option_string_actions:
                raise UsageError(message)
            raise UsageError(
                f"unknown option {option[0]}{close_match(option[0], self._option_string_actions)}"
            )

    def _handle_unrecognized_alias(self, arg: str) -> None:
        option = "--" + arg
        known = ["--" + name for name in (*self.aliases, *self.flags)]
        raise UsageError(f"unknown option {option}{close_match(option, known)}")

    def _convert_to_config(self) -> None:
        try:
            super()._convert_to_config()
        except ArgumentError as e:  # a repeated option, a value that does not parse
            raise UsageError(" ".join(str(e).split())) from None
        check_config(self.config, "--{}")


def check_config(config: Config, spell: str) -> None:
    """Raise UsageError for a ``Class.trait`` setting no known class declares, or a value
    its trait refuses (which traitlets would only find when the class is first used).

    ``spell`` renders a setting as the user wrote it (``--{}`` or ``c.{}``). Classes are
    every imported Configurable plus the kernel provisioners, which load lazily.
    """
    for section, values in config.items():
        if not isinstance(values, Config):
            continue
        classes = _configurables()
        if section not in classes:
            classes = _configurables(load_provisioners=True)
        cls = classes.get(section)
        if cls is None:
            setting = spell.format(f"{section}.{next(iter(values), '')}")
            raise UsageError(
                f"unknown option {setting}: no class {section}{close_match(section, classes)}"
            )
        traits = cls.class_traits(config=True)
        for name, value in values.items():
            setting = spell.format(f"{section}.{name}")
            if name in traits:
                _check_value(cls, traits[name], value, setting)
            elif not isinstance(value, Config):
                known = [spell.format(f"{section}.{t}") for t in traits]
                raise UsageError(f"unknown option {setting}{close_match(setting, known)}")


def _check_value(cls: type[HasTraits], trait: TraitType, value: Any, setting: str) -> None:
    if isinstance(value, LazyConfigValue):
        return  # an .append()/.update() of a config file: applied to the value the class has
    if isinstance(value, DeferredConfig):
        value = value.get_value(trait)
    probe = cls.__new__(cls)  # an instance to validate against; its __init__ never runs
    try:
        trait._validate(probe, value)
    except TraitError as e:
        raise UsageError(f"bad value for {setting}: {' '.join(str(e).split())}") from None
    except Exception:  # noqa: S110 - a validator that needs a built instance judges it later
        pass


def _configurables(load_provisioners: bool = False) -> dict[str, type[Configurable]]:
    if load_provisioners:
        for entry_point in entry_points(group=PROVISIONERS):
            try:
                entry_point.load()
            except Exception:  # noqa: S112 - a broken third-party provisioner is not ours to report
                continue
    found: dict[str, type[Configurable]] = {}
    todo: list[type[Configurable]] = [Configurable]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo += cls.__subclasses__()
    return found
