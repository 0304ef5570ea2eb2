"""``provision env`` output for every common shell, byte-compatible with Docker Machine's."""

from __future__ import annotations

import os
from collections import namedtuple

from .errors import UsageError

POSIX_SHELLS = frozenset({"bash", "zsh", "sh", "ksh", "dash", "ash", "mksh", "yash"})
SHELLS = ("bash", "zsh", "sh", "fish", "powershell", "pwsh", "cmd", "tcsh", "csh", "emacs")


# A namedtuple, not a dataclass: this module is on the start-up path of `env`.
# ``prefix NAME assign VALUE suffix`` sets a variable, with VALUE already quoted by ``quote``.
_Syntax = namedtuple("_Syntax", "prefix assign suffix unset_prefix unset_suffix")


_SYNTAX = {
    "posix": _Syntax("export ", "=", "\n", "unset ", "\n"),
    "fish": _Syntax("set -gx ", " ", ";\n", "set -e ", ";\n"),
    "powershell": _Syntax("$Env:", " = ", "\n", "Remove-Item Env:\\\\", "\n"),
    "cmd": _Syntax("SET ", "=", "\n", "SET ", "=\n"),
    "tcsh": _Syntax("setenv ", " ", ";\n", "unsetenv ", ";\n"),
    "emacs": _Syntax('(setenv "', '" ', ")\n", '(setenv "', '" nil)\n'),
}

# Characters that mean nothing inside double quotes in any of the shells (nor bare in cmd's SET): a value
# made of these alone is printed as Docker Machine printed it. Anything else is quoted for its shell.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:,@+=[]~ ")
# cmd.exe has no quoting that survives `FOR /f ... DO @%i`; these would be read as syntax there.
_CMD_UNSAFE = frozenset('&|<>^%"!()')


class UnsafeValue(UsageError):
    """A value no quoting makes safe for the chosen shell (a control character, cmd's syntax)."""

    exit_code = 1


def quote(shell: str, name: str, value: str) -> str:
    """``value`` quoted so that the shell reads it back unchanged and runs nothing in it."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UnsafeValue(f"{name} would hold a control character, which provision never prints for a shell: "
                          f"{value!r}")
    if shell == "emacs":  # an elisp string: only the backslash and the double quote are special
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    plain = set(value) <= _PLAIN
    if shell == "cmd":
        if not set(value).isdisjoint(_CMD_UNSAFE):
            raise UnsafeValue(f"{name} holds characters cmd.exe would run as syntax ({value}); "
                              "use --shell powershell")
        return value
    if plain:
        return f'"{value}"'
    if shell == "fish":  # in fish's single quotes only \\ and \' are escapes
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if shell == "powershell":  # single quotes expand nothing; a quote (or a typographic one) is doubled
        return "'" + "".join(c * 2 if c in "'\u2018\u2019\u201a\u201b" else c for c in value) + "'"
    quoted = "'" + value.replace("'", "'\\''") + "'"
    if shell == "tcsh":  # csh runs history substitution even inside single quotes
        quoted = quoted.replace("!", "\\!")
    return quoted


def canonical_shell(name: str) -> str:
    base = os.path.basename(name).lower()
    if base.endswith(".exe"):
        base = base[:-4]
    if base in POSIX_SHELLS:
        return "posix"
    if base in ("powershell", "pwsh"):
        return "powershell"
    if base in ("tcsh", "csh"):
        return "tcsh"
    if base in _SYNTAX:
        return base
    raise UsageError(f'Unknown shell "{name}"; use --shell with one of: {", ".join(SHELLS)}')


def detect_shell(explicit: str | None, environ: dict[str, str] | os._Environ[str]) -> str:
    if explicit:
        return canonical_shell(explicit)
    shell = environ.get("SHELL", "")
    return canonical_shell(shell) if shell else "posix"


def usage_hint(shell: str, command_line: str) -> str:
    comment = "#"
    if shell == "fish":
        cmd = f"eval ({command_line})"
    elif shell == "powershell":
        cmd = f"& {command_line} | Invoke-Expression"
    elif shell == "cmd":
        cmd = f"\t@FOR /f \"tokens=*\" %i IN ('{command_line}') DO @%i"
        comment = "REM"
    elif shell == "emacs":
        cmd = f'(with-temp-buffer (shell-command "{command_line}" (current-buffer)) (eval-buffer))'
        comment = ";;"
    elif shell == "tcsh":  # tcsh has no $(...); and ':' is a no-op where '#' would not be a comment
        cmd = f"eval `{command_line}`"
        comment = ":"
    else:
        cmd = f"eval $({command_line})"
    return f"{comment} Run this command to configure your shell: \n{comment} {cmd}\n"


def no_proxy_pair(ip: str, environ: dict[str, str] | os._Environ[str]) -> tuple[str, str]:
    """The proxy-exclusion variable to set and its new value, as Docker Machine chose them: ``no_proxy``
    when it is set, else ``NO_PROXY`` (also when neither is set)."""
    var, value = "no_proxy", environ.get("no_proxy", "")
    if not value:
        var, value = "NO_PROXY", environ.get("NO_PROXY", "")
    if not value:
        value = ip
    elif ip not in value:
        value = f"{value},{ip}"
    return var, value


def render_set(shell: str, variables: list[tuple[str, str]], command_line: str, unset: tuple[str, ...] = ()) -> str:
    syntax = _SYNTAX[shell]
    body = "".join(f"{syntax.unset_prefix}{k}{syntax.unset_suffix}" for k in unset)
    body += "".join(f"{syntax.prefix}{k}{syntax.assign}{quote(shell, k, v)}{syntax.suffix}" for k, v in variables)
    return body + usage_hint(shell, command_line)


def render_unset(shell: str, names: list[str], command_line: str) -> str:
    syntax = _SYNTAX[shell]
    body = "".join(f"{syntax.unset_prefix}{k}{syntax.unset_suffix}" for k in names)
    return body + usage_hint(shell, command_line)


ENV_NAMES = ("DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME")


TLS_NAMES = ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


def over_ssh(url: str) -> bool:
    return url.startswith("ssh://")


def machine_variables(name: str, url: str, ip: str, cert_path: str, no_proxy: bool,
                      environ: dict[str, str] | os._Environ[str]) -> list[tuple[str, str]]:
    if over_ssh(url):  # the docker CLI logs in over SSH: no TLS files (env unsets the TLS variables)
        variables = [("DOCKER_HOST", url), ("DOCKER_MACHINE_NAME", name)]
    else:
        variables = [("DOCKER_TLS_VERIFY", "1"), ("DOCKER_HOST", url), ("DOCKER_CERT_PATH", cert_path),
                     ("DOCKER_MACHINE_NAME", name)]
    if no_proxy:
        variables.append(no_proxy_pair(ip, environ))
    return variables


def unset_names(no_proxy: bool, environ: dict[str, str] | os._Environ[str]) -> list[str]:
    names = list(ENV_NAMES)
    if no_proxy:
        names.append(no_proxy_pair("", environ)[0])
    return names


def env_script(*, shell: str | None, unset: bool, no_proxy: bool, command_line: str,
               environ: dict[str, str] | os._Environ[str], connection: tuple[str, str, str, str] | None) -> str:
    """The whole ``env`` output. ``connection`` is (name, url, ip, cert_path); unused with ``unset``."""
    syntax = detect_shell(shell, environ)
    if unset:
        return render_unset(syntax, unset_names(no_proxy, environ), command_line)
    assert connection is not None
    name, url, ip, cert_path = connection
    return render_set(syntax, machine_variables(name, url, ip, cert_path, no_proxy, environ), command_line,
                      unset=TLS_NAMES if over_ssh(url) else ())


def config_flags(*, ca: str, cert: str, key: str, url: str) -> str:
    """What `config` prints: the docker CLI flags for a machine, one per line, as Docker Machine did."""
    if over_ssh(url):
        return f"-H={url}\n"
    return f'--tlsverify\n--tlscacert="{ca}"\n--tlscert="{cert}"\n--tlskey="{key}"\n-H={url}\n'


def override_warnings(environ: dict[str, str] | os._Environ[str], context: str) -> list[str]:
    """Variables that beat docker's current context, so `use` can say why it seems to do nothing."""
    return [f"{var} is set in this shell and overrides the current context ({context}); "
            f"run `provision env --unset` or `unset {var}`" for var in ("DOCKER_HOST", "DOCKER_CONTEXT")
            if environ.get(var)]
