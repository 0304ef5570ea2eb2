"""Import every command module so the typer app knows them all."""

from . import create, info, lifecycle, listing, migrate, plugin, ports, project, remote, share, shell, swarm  # noqa: F401,E501
from .app import app

__all__ = ["app"]
