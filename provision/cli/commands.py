"""Every command of provision, declared once, as data.

Each ``Command`` names its handler as ``"module:function"`` and declares its flags as ``OptionSpec`` data
and its positional ``Argument``s. From this table ``provision.cli.app`` builds the click application
(parsing, ``--help``, usage errors) and ``provision.cli.quick`` parses the commands it may answer from the
record; both call the same handler, with one keyword argument per option key and argument name.

To add a command: write its handler in a module of ``provision/cli/`` (``def handler(call: Call, ...)``,
taking a ``provision.cli.call.Call`` and printing through ``call.out``/``call.warn``), then add a
``Command`` to ``COMMANDS`` below (a ``"group verb"`` name puts it under a group declared in ``GROUPS``).
Nothing else registers it. This module is read on every quick run, so it imports nothing heavy and
handlers are imported only when their command runs.
"""

from __future__ import annotations

from provision import paths
from provision.filerules import LS_TIMEOUT
from provision.optionspec import OptionSpec

TYPE_CHECKING = False  # typing itself costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Argument:
    """A positional argument: ``many`` takes any number (a list), ``required`` at least one."""

    __slots__ = ("name", "metavar", "many", "required", "help")

    def __init__(self, name: str, metavar: str, *, many: bool = False, required: bool = False,
                 help: str = "") -> None:
        self.name, self.metavar, self.many, self.required, self.help = name, metavar, many, required, help


class Command:
    """One command.

    ``quick``: the quick tier may answer it straight from the record (``provision.cli.quick``).
    ``extra``: what the command does with arguments beyond its declared ones: None refuses them;
    ``"after"`` hands everything after the declared arguments to the handler unparsed (``call.args``:
    ``ssh``'s client flags); ``"flags"`` hands every argument to the handler, which parses them with
    ``flagparse`` against ``options_from`` plus flags known only at run time (``create``'s driver flags).
    ``options_from``: ``"module:name"`` of a tuple of ``OptionSpec`` declared elsewhere, imported only
    when the command runs.
    """

    __slots__ = ("name", "help", "handler", "options", "arguments", "quick", "extra", "options_from")

    def __init__(self, name: str, help: str, handler: str, options: tuple[OptionSpec, ...] = (),
                 arguments: tuple[Argument, ...] = (), *, quick: bool = False, extra: str | None = None,
                 options_from: str | None = None) -> None:
        self.name, self.help, self.handler, self.options = name, help, handler, options
        self.arguments, self.quick, self.extra, self.options_from = arguments, quick, extra, options_from

    def load(self) -> Callable[..., Any]:
        return resolve(self.handler)

    def all_options(self) -> tuple[OptionSpec, ...]:
        """Its own options and those ``options_from`` names (which this imports)."""
        return self.options + (resolve(self.options_from) if self.options_from else ())


def resolve(target: str) -> Any:
    """The object ``"module:name"`` names, imported now."""
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


PROGRAM_HELP = "Docker hosts anywhere: create machines, install Docker Engine with mutual TLS, point docker at them."

# Before the command. The quick tier reads the same three (``flagparse.leading``); ``--version`` and
# ``--help`` always go to the full CLI.
GLOBAL_OPTIONS = (
    OptionSpec("storage-path", "Store root (default: $MACHINE_STORAGE_PATH, else the platform's user data dir)",
               envvar=paths.STORAGE_ENV, short="-s", metavar="PATH"),
    OptionSpec("debug", "Show every command run, here and on the machine, and full errors", bool, False,
               short="-D"),
    OptionSpec("native-ssh", "Accepted for Docker Machine's scripts and ignored: `ssh` and `scp` always run the "
               "OpenSSH client, provisioning always uses the built-in client", bool, False),
)
VERSION_OPTION = OptionSpec("version", "Print provision's version and exit", bool, False, short="-v")

NAME = Argument("names", "[NAME]", many=True)  # one name; several are refused in Docker Machine's words
NAMES = Argument("names", "[NAME...]", many=True)
ADVERTISE = OptionSpec("swarm-advertise-addr", "Address the other members reach the machine at (default: the "
                       "driver's cluster address; generic and none: the SSH address)", dest="advertise")
PASSPHRASE_FILE = OptionSpec("passphrase-file", "Read the passphrase from the first line of FILE ('-' for stdin) "
                             "instead of prompting", metavar="FILE")

# Every project command finds its file and name the same way (compose's -f and -p).
PROJECT_OPTIONS = (
    OptionSpec("file", "Project file (default: provision.yml or provision.yaml here)", short="-f", metavar="FILE"),
    OptionSpec("project-name", "Project name (default: the file's name key, else the directory's name)", short="-p",
               metavar="NAME", dest="name"),
)
GROUPS = {"swarm": "Swarm mode clusters of machines: init, join, ls, leave"}

COMMANDS = (
    Command("create", "Create a machine (see `provision create -d DRIVER --help` for the driver's flags)",
            "provision.cli.create:create", extra="flags", options_from="provision.createflags:SHARED_CREATE_OPTIONS"),
    Command("ip", "Print the machine's IP address", "provision.cli.info:ip", arguments=(NAMES,)),
    Command("url", "Print the machine's Docker engine URL", "provision.cli.info:url", arguments=(NAME,), quick=True),
    Command("status", "Print the machine's state", "provision.cli.info:status", arguments=(NAME,)),
    Command("inspect", "Print the machine's record and facts as JSON, or through a -f template",
            "provision.cli.info:inspect", (
                OptionSpec("format", "docker-style template, e.g. '{{.Driver.IPAddress}}'", short="-f", dest="fmt"),
            ), (NAME,)),
    Command("config", "Print the docker CLI flags that reach the machine", "provision.cli.info:config",
            arguments=(NAME,), quick=True),
    Command("version", "Print provision's version, or the Docker engine version of NAME", "provision.cli.info:version",
            arguments=(NAME,)),
    Command("drivers", "List installed drivers and their flags", "provision.cli.info:drivers"),
    Command("start", "Start machines", "provision.cli.lifecycle:start", arguments=(NAMES,)),
    Command("stop", "Stop machines gracefully", "provision.cli.lifecycle:stop", arguments=(NAMES,)),
    Command("restart", "Restart machines", "provision.cli.lifecycle:restart", arguments=(NAMES,)),
    Command("kill", "Kill machines (forced stop)", "provision.cli.lifecycle:kill", arguments=(NAMES,)),
    Command("rm", "Remove machines: their resources, docker context and record", "provision.cli.lifecycle:rm", (
        OptionSpec("force", "Remove the local record even if the driver fails (implies -y)", bool, False, short="-f"),
        OptionSpec("yes", "Do not ask for confirmation", bool, False, short="-y"),
    ), (NAMES,)),
    Command("ls", "List machines, probing each (in parallel, each bounded by --timeout)", "provision.cli.listing:ls", (
        OptionSpec("quiet", "Names only", bool, False, short="-q"),
        OptionSpec("filter", "name=REGEX, driver=D, state=S, label=K=V", multiple=True, short="-f", dest="filters"),
        OptionSpec("format", "docker-style template, e.g. 'table {{.Name}}\\t{{.URL}}'", dest="fmt"),
        OptionSpec("timeout", "Seconds for each machine's probe", float, LS_TIMEOUT, short="-t"),
        OptionSpec("json", "JSON output", bool, False, dest="as_json"),
    ), quick=True),
    Command("migrate", "Make Docker Machine's machines provision machines (its store is only read)",
            "provision.cli.migrate:migrate", (
                OptionSpec("from", "Docker Machine's store (default: $MACHINE_STORAGE_PATH, else ~/.docker/machine)",
                           metavar="DIR", dest="source"),
                OptionSpec("rename", "Migrate machine OLD under the name NEW (repeatable)", multiple=True,
                           metavar="OLD=NEW"),
            ), (Argument("names", "[NAME...]", many=True, help="Machines to migrate (default: all)"),)),
    Command("ports", "Show the machine's published ports and their forwards to 127.0.0.1 (a local machine's host "
            "agent keeps them); --forward forwards another machine's ports over SSH until Ctrl-C",
            "provision.cli.ports:ports", (
                OptionSpec("json", "Print the table as JSON", bool, False, dest="as_json"),
                OptionSpec("forward", "Forward the machine's published TCP ports to the same ports on 127.0.0.1 over "
                           "its SSH connection, following containers, until Ctrl-C", bool, False),
            ), (NAME,)),
    Command("ssh", "Log into or run a command on a machine with SSH (pinned host key). ssh client flags may follow "
            "NAME (provision ssh dev -L 8080:localhost:80); -- ends them", "provision.cli.remote:ssh",
            arguments=(Argument("name", "NAME [SSH-FLAGS] [CMD...]"),), extra="after"),
    Command("scp", "Copy files between machines and this host (machine:path on either side)",
            "provision.cli.remote:scp", (
                OptionSpec("recursive", "Copy directories recursively", bool, False, short="-r"),
                OptionSpec("delta", "Copy only what changed (rsync)", bool, False, short="-d"),
            ), (Argument("source", "SRC", required=True), Argument("destination", "DST", required=True))),
    Command("provision", "Re-run provisioning: configure Docker and install certificates again",
            "provision.cli.remote:reprovision", arguments=(NAMES,)),
    Command("upgrade", "Upgrade Docker Engine on machines in place", "provision.cli.remote:upgrade",
            arguments=(NAMES,)),
    Command("regenerate-certs", "Issue new server certificates (no reinstall; containers keep running)",
            "provision.cli.remote:regenerate_certs", (
                OptionSpec("force", "Do not ask for confirmation", bool, False, short="-f"),
                OptionSpec("client-certs", "Also issue a new client certificate", bool, False),
            ), (NAMES,)),
    Command("export", "Export a machine for a teammate: an encrypted bundle with the engine URL, the CA certificate "
            "and a new client certificate issued for it (never your key or the CA key). --docker-context writes "
            "docker's own context export instead, for `docker context import`; that file is NOT encrypted (docker's "
            "format), so send it as you would a key. --revoke LABEL makes the engine refuse that export's "
            "certificate from now on.", "provision.cli.share:export", (
                OptionSpec("output", "Where to write (default: NAME.provision, or NAME.dockercontext)", short="-o",
                           metavar="FILE"),
                OptionSpec("for", "Who the new client certificate is for: its subject's CN, and in the machine's "
                           "record (default: NAME export DATE)", metavar="LABEL", dest="label"),
                OptionSpec("with-ssh", "Also carry the machine's SSH key, endpoint and pinned host key", bool, False),
                OptionSpec("docker-context", "Write docker's context export format (a tar, unencrypted)", bool,
                           False),
                OptionSpec("revoke", "Revoke the export for LABEL (or with that serial): the engine refuses its "
                           "certificate from now on; dockerd restarts, containers keep running", metavar="LABEL"),
                PASSPHRASE_FILE,
            ), (Argument("name", "NAME", required=True),)),
    Command("import", "Import a machine a teammate exported: record, certificates and docker context",
            "provision.cli.share:import_bundle", (
                OptionSpec("name", "Name the machine here (default: its name in the bundle)", metavar="NEW"),
                PASSPHRASE_FILE,
            ), (Argument("file", "FILE", required=True),)),
    Command("env", "Print the shell commands that point docker at a machine (eval them)", "provision.cli.shell:env", (
        OptionSpec("shell", "bash, zsh, sh, fish, powershell, cmd, tcsh or emacs (default: from $SHELL)"),
        OptionSpec("unset", "Print commands that undo the settings", bool, False, short="-u"),
        OptionSpec("no-proxy", "Add the machine's IP to NO_PROXY/no_proxy", bool, False),
        OptionSpec("swarm", "Point at a manager of NAME's swarm cluster", bool, False),
    ), (NAME,), quick=True),
    Command("use", "Make NAME the docker CLI's current context (use --unset to go back to default)",
            "provision.cli.shell:use", (
                OptionSpec("unset", "Go back to docker's default context", bool, False, short="-u"),
            ), (Argument("name", "NAME"),), quick=True),
    Command("active", "Print the machine the shell or the docker CLI points at", "provision.cli.shell:active",
            quick=True),
    Command("swarm init", "Make MANAGER a Swarm mode manager advertising its cluster address",
            "provision.cli.swarm:init", (ADVERTISE,), (Argument("manager", "MANAGER", required=True),)),
    Command("swarm join", "Join machines to the cluster MANAGER manages (tokens read from it, never shown)",
            "provision.cli.swarm:join", (
                OptionSpec("manager", "Join as managers (default: workers)", bool, False, dest="as_manager"),
                ADVERTISE,
            ), (Argument("manager", "MANAGER", required=True), Argument("names", "NAME...", many=True, required=True))),
    Command("swarm leave", "Drain machines, let their tasks move, leave the swarm and drop their nodes",
            "provision.cli.swarm:leave", (
                OptionSpec("force", "Also the last manager of a cluster that still has workers", bool, False,
                           short="-f"),
            ), (Argument("names", "NAME...", many=True, required=True),)),
    Command("swarm ls", "Clusters by manager machine, each node's role, state and availability",
            "provision.cli.swarm:ls"),
    # Fleets from a project file (provision.yml): provision.project does the work.
    Command("up", "Make the project's missing machines in parallel, form its swarm, deploy its stacks",
            "provision.cli.project:up", (
                *PROJECT_OPTIONS,
                OptionSpec("parallel", "Make at most this many machines at a time", int, 4),
                OptionSpec("recreate", "Replace machines whose options changed in the file (drained out of the "
                           "swarm first)", bool, False),
                OptionSpec("dry-run", "Show the plan and touch nothing (as `plan`)", bool, False),
                OptionSpec("json", "With --dry-run: the plan as JSON", bool, False, dest="as_json"),
            )),
    Command("plan", "What `up` would make, replace, leave or remove; touches nothing", "provision.cli.project:plan", (
        *PROJECT_OPTIONS,
        OptionSpec("json", "JSON output", bool, False, dest="as_json"),
        OptionSpec("recreate", "Plan to replace drifted machines", bool, False),
    )),
    Command("down", "Remove the project's stacks and machines (never a machine outside the project)",
            "provision.cli.project:down", (
                *PROJECT_OPTIONS,
                OptionSpec("yes", "Do not ask for confirmation", bool, False, short="-y"),
                OptionSpec("parallel", "Remove at most this many workers at a time", int, 4),
            )),
    Command("ps", "The project's machines: state, group, swarm role and engine (like ls)", "provision.cli.project:ps", (
        *PROJECT_OPTIONS,
        OptionSpec("json", "JSON output", bool, False, dest="as_json"),
        OptionSpec("quiet", "Names only", bool, False, short="-q"),
    )),
    Command("install-docker-plugin", "Install `docker machine` as a docker CLI plugin ($DOCKER_CONFIG/cli-plugins)",
            "provision.cli.plugin:install_docker_plugin", (
                OptionSpec("uninstall", "Remove the plugin instead", bool, False),
            )),
    Command("completion", "Print shell completion for bash, zsh or fish (knows machine names)",
            "provision.cli.plugin:completion", arguments=(Argument("shell", "SHELL", required=True,
                                                                   help="bash, zsh or fish"),)),
)
