"""Where things live: the name of every file in the store (``provision.filerules`` finds the root).

Paths inside the store are always derived from the root at run time and never written into a record,
so a store can be moved or shared as a directory.
"""

from __future__ import annotations

STORAGE_ENV = "PROVISION_STORAGE_PATH"
MACHINE_STORAGE_ENV = "MACHINE_STORAGE_PATH"  # Docker Machine's, honoured when ours is not set
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
STORE_LOCK = ".store.lock"  # at the root: choosing something unique among the machines (a cluster address)

RECORD_SCHEMA_VERSION = 1  # of machine.json
CONTEXT_MARKER = "ProvisionMachine"  # metadata field that marks a docker context as provision's own
