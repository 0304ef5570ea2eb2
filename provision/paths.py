"""Where things live: the store root, and the name of every file in it.

Paths inside the store are always derived from the root at run time and never written into a record,
so a store can be moved or shared as a directory.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself costs start-up time on the `env` path
if TYPE_CHECKING:
    from pathlib import Path

STORAGE_ENV = "PROVISION_STORAGE_PATH"
CACHE_ENV = "PROVISION_CACHE_PATH"
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"

CERTS_DIR = "certs"
MACHINES_DIR = "machines"
CACHE_DIR = "cache"

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
CLIENT_CERT = "cert.pem"
CLIENT_KEY = "key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"

RECORD = "machine.json"
SSH_KEY = "id_ed25519"
SSH_PUBKEY = "id_ed25519.pub"
KNOWN_HOSTS = "known_hosts"
LOCK = ".lock"

RECORD_SCHEMA_VERSION = 1  # of machine.json
CONTEXT_MARKER = "ProvisionMachine"  # metadata field that marks a docker context as provision's own


def default_storage_path(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    from pathlib import Path

    env = os.environ if environ is None else environ
    if env.get(STORAGE_ENV):
        return Path(env[STORAGE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("provision", appauthor=False))


def docker_config_dir(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """Docker's own config dir, found the way the docker CLI finds it."""
    from pathlib import Path

    env = os.environ if environ is None else environ
    if env.get(DOCKER_CONFIG_ENV):
        return Path(env[DOCKER_CONFIG_ENV]).expanduser()
    return Path.home() / ".docker"
