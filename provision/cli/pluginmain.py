"""What the installed ``docker-machine`` plugin runs: the docker CLI's metadata call, else provision."""

from __future__ import annotations


def plugin_main(argv: list[str]) -> int:
    """``docker machine ARGS`` runs ``docker-machine machine ARGS``; the docker CLI lists the plugin by
    running ``docker-machine docker-cli-plugin-metadata``."""
    from provision.dockerplugin import METADATA_COMMAND, PLUGIN_NAME, metadata_json

    if argv[:1] == [METADATA_COMMAND]:
        print(metadata_json())
        return 0
    if argv[:1] == [PLUGIN_NAME]:
        argv = argv[1:]
    from .main import main

    return main(argv)
