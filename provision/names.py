"""Machine names and the docker context names derived from them."""

from __future__ import annotations

import re

from .errors import InvalidNameError

MACHINE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9.-]*$")
CONTEXT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$")
MAX_NAME_LENGTH = 63  # a hostname label: the name becomes the machine's hostname
CONTEXT_PREFIX = "provision-"
DEFAULT_MACHINE = "default"


def is_machine_name(name: str) -> bool:
    return bool(MACHINE_NAME.match(name)) and len(name) <= MAX_NAME_LENGTH


def validate_machine_name(name: str) -> str:
    if not is_machine_name(name):
        raise InvalidNameError(
            f'Invalid machine name "{name}": use letters, digits, "." and "-", starting with a letter '
            f"or digit, at most {MAX_NAME_LENGTH} characters"
        )
    return name


def context_name(machine: str) -> str:
    """The docker context for a machine: its own name when docker accepts it.

    Docker reserves ``default`` and wants at least two characters, so a machine called ``default`` or
    ``a`` gets the context ``provision-default`` or ``provision-a``.
    """
    if machine == DEFAULT_MACHINE or not CONTEXT_NAME.match(machine):
        return CONTEXT_PREFIX + machine
    return machine
