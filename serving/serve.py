"""``bentoml serve`` with what one ganzoo instance needs around it (``make serve`` runs this).

    python -m serving.serve serving.service:Ganzoo --host 0.0.0.0 --port 3000 [bentoml serve options]

Every argument goes to ``bentoml serve`` unchanged; around it:

- BentoML's usage tracking is off unless ``BENTOML_DO_NOT_TRACK`` says otherwise.
- The instance gets a Prometheus multiprocess directory of its own. BentoML 1.4.39 always
  uses ``$BENTOML_HOME/prometheus_multiproc_dir`` and empties it at start, so a second
  instance on the same BENTOML_HOME resets the first one's metrics; neither an environment
  variable nor a configuration key changes that (``PROMETHEUS_MULTIPROC_DIR`` is overwritten
  for the workers), only ``BentoMLContainer.prometheus_multiproc_dir``, set here before the
  CLI runs. The directory is ``$GANZOO_PROMETHEUS_DIR`` when set, else
  ``$BENTOML_HOME/ganzoo-prometheus/<pid of this process>``; directories of processes that
  no longer run are removed at start.
- On SIGTERM or Ctrl-C the HTTP-facing service drains first, its dependencies after it.
- A worker that exits is logged by the arbiter with its exit code (circus, BentoML's process
  manager, logs reaped workers at DEBUG only and without the code).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("bentoml.ganzoo")
PROMETHEUS_SUBDIR = "ganzoo-prometheus"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def prometheus_dir(home: str | Path, pid: int | None = None, env: dict[str, str] | None = None) -> Path:
    """This instance's Prometheus multiprocess directory (created; see the module docstring)."""
    env = dict(os.environ) if env is None else env
    if env.get("GANZOO_PROMETHEUS_DIR", "").strip():
        path = Path(env["GANZOO_PROMETHEUS_DIR"].strip())
    else:
        base = Path(home) / PROMETHEUS_SUBDIR
        if base.is_dir():
            for old in base.iterdir():  # left by instances that were killed
                if old.is_dir() and old.name.isdigit() and not _alive(int(old.name)):
                    shutil.rmtree(old, ignore_errors=True)
        path = base / str(os.getpid() if pid is None else pid)
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_worker_exit(watcher: Any, arbiter: Any, hook_name: str, process_pid: int = 0, exit_code: int | None = None,
                    **_: Any) -> bool:
    """circus ``after_reap`` hook: one log line per worker that exited, with how it ended."""
    how = f"signal {signal.Signals(-exit_code).name}" if isinstance(exit_code, int) and exit_code < 0 else \
        f"exit code {exit_code}"
    if watcher.status() == "active":
        then = "circus starts a new one" if watcher.respawn else "not restarted (no respawn inside a container)"
        log.warning("worker %s of %r died (%s); %s", process_pid, watcher.name, how, then)
    else:
        log.info("worker %s of %r stopped (%s)", process_pid, watcher.name, how)
    return True


def _install_reap_logging() -> None:
    """Give every watcher BentoML creates the ``after_reap`` hook above."""
    import bentoml.serving

    create = bentoml.serving.create_watcher
    if getattr(create, "_ganzoo", False):
        return

    def create_watcher(*args: Any, **kwargs: Any) -> Any:
        hooks = dict(kwargs.pop("hooks", None) or {})
        hooks.setdefault("after_reap", (log_worker_exit, True))
        return create(*args, hooks=hooks, **kwargs)

    create_watcher._ganzoo = True  # type: ignore[attr-defined]
    bentoml.serving.create_watcher = create_watcher  # serve_http imports it at call time


ENTRY_WATCHER = "service"  # circus' name for the HTTP-facing (entry) service; dependencies are service_<name>


def _install_ordered_stop() -> None:
    """Stop the HTTP-facing service first, its dependencies after it has drained.

    circus stops every watcher at once, and the inference service (serving/engine.py) stops
    accepting as the HTTP service drains: requests still being prepared then fail. Circus has
    no stop order (watcher priorities only order starts), so its ``_stop_watchers`` is
    replaced by one that awaits the entry watcher's graceful stop before stopping the rest.
    """
    from circus.arbiter import Arbiter
    from tornado import gen

    if getattr(Arbiter._stop_watchers, "_ganzoo", False):
        return

    @gen.coroutine
    def _stop_watchers(self: Any, close_output_streams: bool = False, watcher_iter_func: Any = None) -> Any:
        watchers = list((watcher_iter_func or self.iter_watchers)(reverse=False))
        first = [w for w in watchers if w.name == ENTRY_WATCHER]
        yield gen.multi([w._stop(close_output_streams) for w in first])
        yield gen.multi([w._stop(close_output_streams) for w in watchers if w not in first])

    _stop_watchers._ganzoo = True  # type: ignore[attr-defined]
    Arbiter._stop_watchers = _stop_watchers

    # BentoML's arbiter also runs its exit stack *before* stopping the watchers, and that
    # removes the directory of the services' unix sockets: a draining HTTP service could no
    # longer open a connection to the inference service. Run it once the watchers stopped.
    from bentoml._internal.utils import circus as bentoml_circus

    def stop(self: Any) -> Any:
        future = Arbiter.stop(self)
        future.add_done_callback(lambda _: self.exit_stack.__exit__(None, None, None))
        return future

    bentoml_circus.Arbiter.stop = stop


def main(argv: list[str] | None = None) -> int:
    """Run ``bentoml serve ARGV`` in this process with the settings above."""
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml_cli.cli import cli

    path = prometheus_dir(BentoMLContainer.bentoml_home.get())
    BentoMLContainer.prometheus_multiproc_dir.set(str(path))
    _install_reap_logging()
    _install_ordered_stop()
    print(f"ganzoo: Prometheus multiprocess directory of this instance: {path}", file=sys.stderr, flush=True)
    try:
        cli.main(["serve", *(sys.argv[1:] if argv is None else argv)], prog_name="bentoml")  # always SystemExit
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        if not os.environ.get("GANZOO_PROMETHEUS_DIR", "").strip():
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
