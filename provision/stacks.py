"""Stacks on a machine's swarm, deployed and removed by the docker CLI exactly as a user would
(``docker stack deploy``), against the machine's own docker context in the store's docker config."""

from __future__ import annotations

from pathlib import Path

from .names import context_name
from .run import run

DEPLOY_TIMEOUT = 600.0
MISSING_DOCKER = "install the docker CLI (Debian: docker.io or docker-ce-cli)"


def _docker(config_dir: Path, manager: str) -> list[str]:
    # --context outranks DOCKER_HOST and DOCKER_CONTEXT in the environment: the stack goes where we say.
    return ["docker", "--config", str(config_dir), "--context", context_name(manager)]


def deploy(config_dir: Path, manager: str, stack: str, compose_file: Path) -> str:
    """Deploy (or update) ``stack`` from ``compose_file`` through the manager; images are not looked up in a
    registry (the machines may have them loaded locally, or reach the registry themselves)."""
    return run([*_docker(config_dir, manager), "stack", "deploy", "--detach=true", "--resolve-image", "never",
                "--compose-file", str(compose_file), stack],
               timeout=DEPLOY_TIMEOUT, what=f"docker stack deploy {stack}", missing_hint=MISSING_DOCKER)


def remove(config_dir: Path, manager: str, stack: str) -> str:
    return run([*_docker(config_dir, manager), "stack", "rm", stack], timeout=120,
               what=f"docker stack rm {stack}", missing_hint=MISSING_DOCKER)
