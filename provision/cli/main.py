"""Entry point: run a command and turn every failure into one stderr line and an exit code.

This is the one place that maps errors to exit codes (0 ok, 1 failure, 2 bad usage, 130 interrupted).
Tracebacks appear only under ``--debug``. The quick tier answers first when it can; the click
application built from the same declarations answers everything else.
"""

from __future__ import annotations

import sys

from provision.errors import ProvisionError


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        # Imported here, inside the try: a Ctrl-C this early is "Interrupted", not a traceback.
        from .commands import GLOBAL_OPTIONS
        from .flagparse import leading

        scanned = leading(args, GLOBAL_OPTIONS)  # the global options, read once for every tier
        debug = bool(scanned and scanned[0].get("debug"))
        from .quick import run_quick

        code = run_quick(args, scanned)
        if code is not None:
            return code
        from .app import application

        application().main(args=args, prog_name="provision", standalone_mode=True)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ProvisionError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        print(message, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file or directory the OS refused, where no caller explained it
        if debug:
            raise
        from provision.errors import describe_os_error

        print(describe_os_error(exc), file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: say so in one line unless asked for the traceback
        if debug:
            raise
        detail = " ".join(str(exc).split())[:300]  # one line, whatever the exception carries
        print(f"provision hit a bug: {type(exc).__name__}: {detail} (run it again with --debug for the "
              "traceback, and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
