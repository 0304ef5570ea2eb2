"""The machine service (``Machines``) and the records its callers exchange with it."""

from provision.errors import MachineNotFound

from .core import ConnectionInfo, describe_failure
from .creating import CreateRequest
from .inventory import Listing, swarm_column
from .service import Machines

__all__ = ["ConnectionInfo", "CreateRequest", "Listing", "MachineNotFound", "Machines", "describe_failure",
           "swarm_column"]
