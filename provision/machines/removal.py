"""``rm``: a machine's resources, its docker context and its record, all or nothing unless forced, and
what a cluster member opened for its peers."""

from __future__ import annotations

from collections.abc import Callable

from provision import agent
from provision.contexts import ContextTLS
from provision.driver import Driver
from provision.errors import BrokenRecord, MachineNotFound, ProvisionError, StoreError
from provision.names import context_name, validate_machine_name
from provision.record import MachineRecord

from .access import Access
from .core import Core


def close_cluster_doors(core: Core, record: MachineRecord, driver: Driver) -> None:
    """A cluster member that goes without leaving its swarm (a failed create, a swarm never formed)
    closes what it opened; the last of the cluster's machines of that driver deletes what they shared,
    so no security group or firewall rule outlives them."""
    if not record.cluster or not driver.capabilities.cluster:
        return
    last = not any(e.name != record.name and e.cluster == record.cluster and e.driver == record.driver
                   for e in core.records())
    driver.leave_cluster(record.cluster, last=last)


class Removal:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.access = Access(core)

    def remove(self, name: str, *, force: bool = False,
               before: Callable[[], None] = lambda: None) -> list[str]:
        """Remove the machine's resources, its context and its record; returns what was left, one line each.

        A plain rm reads all it needs (record, docker context, config.json) before it changes anything, so
        it removes all or nothing; ``before`` (the swarm's drain) runs once that is read. With ``force`` a
        broken record, an unreadable docker file or a driver failure does not stop the local clean-up, and
        the context goes whenever it is provably this machine's.
        """
        validate_machine_name(name)
        store, docker = self.core.store, self.core.docker
        left: list[str] = []
        context = context_name(name)
        owned, selected = self._context_to_remove(name, context, force, left)
        before()
        if store.exists(name):
            agent.end(store.machine_dir(name))
        readable, over_ssh = True, False
        try:
            with store.edit(name) as record:
                over_ssh = record.engine.over_ssh
                self.core.progress(f"Removing {name}")
                driver = self.core.driver_for(record)
                close_cluster_doors(self.core, record, driver)
                driver.remove()
        except MachineNotFound:
            raise
        except StoreError as exc:
            # -f gets past an unreadable record, never past another command's lock: deleting the record
            # under a running create would orphan what it makes.
            if not force or not isinstance(exc, BrokenRecord):
                raise
            readable = False
            left.append(f"{exc.message}; removed all the same")
        except ProvisionError:
            if not force:
                raise
        if owned:  # the ownership marker names the machine: no record is needed to know it
            if selected:  # the one local write that can fail (a full disk) goes first: nothing else is gone yet
                try:
                    docker.set_current_context(None)
                except ProvisionError as exc:
                    if not force:
                        raise
                    left.append(f"{exc.message}; its currentContext still names the removed context {context!r}")
            docker.delete_context(context)
        store.delete(name)
        if over_ssh or not readable:  # a TCP machine's rm need not read every record again
            self.access.write_ssh_config()
        return left

    def _context_to_remove(self, name: str, context: str, force: bool, left: list[str]) -> tuple[bool, bool]:
        """Whether the machine's docker context goes and whether config.json selects it, read before anything
        changes. A file that cannot be read stops a plain rm; ``force`` removes the context only when its TLS
        files are this machine's (its meta.json no longer says so), and adds a line for what it left."""
        docker = self.core.docker
        try:
            owned = docker.owner(context) == name
        except ProvisionError as exc:
            if not force:
                raise
            owned = docker.tls_matches(context, self._own_tls(name))
            left.append(exc.message + ("; removed all the same: its TLS files are this machine's" if owned
                                       else f"; left in place, since nothing shows provision made it ({exc.hint})"))
        if not owned:
            return False, False
        try:
            return True, docker.current_context() == context
        except ProvisionError as exc:
            if not force:
                raise
            left.append(f"{exc.message}; its currentContext may still name the removed context {context!r}")
            return True, False

    def _own_tls(self, name: str) -> ContextTLS | None:
        """The TLS files a context of this machine holds, when its directory still has them all."""
        try:
            return self.access.context_tls(name)
        except OSError:
            return None
