"""Errors raised while an app builds its constructs, written for the person reading `cdktf synth` output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One invalid argument: its dotted attribute path (e.g. `deliver_to.ssm.name`) and what is wrong."""

    attribute: str
    message: str

    def __str__(self) -> str:
        return f"{self.attribute}: {self.message}" if self.attribute else self.message


class TokendropValidationError(ValueError):
    """Invalid construct arguments, found before anything is synthesized. The message names the
    construct path and each attribute at fault, one per line:
    `ci-agents/pool/runners: deliver_to.ssm.name: parameter name 'ci/x' uses a hierarchy, ...`."""

    def __init__(self, construct_path: str, problems: Sequence[Problem]) -> None:
        self.construct_path = construct_path
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{construct_path}: {p}" for p in self.problems))


class CoreMismatchError(TypeError):
    """An app mixes cdktf and cdktn objects, or a construct is created outside any cdktf/cdktn app."""
