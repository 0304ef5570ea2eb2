"""``provision ports NAME``: the ports a machine's containers publish and where they answer on this computer."""

from __future__ import annotations

import json
import signal

from provision import formatting

from .call import Call, out, warn
from .texts import one_name


def ports(call: Call, names: list[str], as_json: bool, forward: bool) -> None:
    from provision import forwarding

    service = call.machines()
    name = service.resolve_name(one_name(names))
    if forward:
        stopping: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
        try:
            forwarding.forward_in_foreground(service, name, warn, keep_going=lambda: not stopping)
        except KeyboardInterrupt:
            warn("Stopped forwarding")
        return
    table = forwarding.table(service, name)
    if as_json:
        out(json.dumps(table, indent=2) + "\n")
        return
    rows = [["HOST", "MACHINE PORT", "PROTOCOL", "STATE", "PUBLISHED BY", "DETAIL"]]
    for entry in table["forwards"]:
        rows.append([f"127.0.0.1:{entry['port']}", str(entry["port"]), entry["protocol"], entry["state"],
                     ", ".join(entry.get("sources") or []), entry.get("detail") or ""])
    out(formatting.columns(rows))
    status = table["agent"]
    if status is not None and not status["running"]:
        warn(f"The port agent of {name} is not running: `provision start {name}` starts it (log: {status['log']})")
    for note in table["not_forwarded"]:
        warn(f"not forwarded: {note}")
