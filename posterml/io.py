"""Files that appear whole or not at all, and commands that clean up when they are stopped.

``atomic_write`` is the one way posterml writes an output file (predictions csv, downloaded
poster, ``labels.csv``, feature cache entries, converted weights): bytes go to a hidden temp
file in the same folder, which is renamed over the target only when the ``with`` block ends
without an exception, and removed otherwise. Readers never see half a file, and a crashed
run leaves nothing behind.

The temp file is created with mode ``0o666`` so the kernel applies the user's umask, exactly
as for ``open(path, "w")``: outputs are ``0644`` under umask ``022`` (``tempfile.mkstemp``
would make them ``0600``). Secrets pass ``permissions=0o600``.

Exceptions only unwind the ``with`` blocks if the process is not simply killed. Python turns
SIGINT into ``KeyboardInterrupt``, but SIGTERM (what ``kill``, ``timeout``, systemd and
container runtimes send) and SIGHUP (a closed terminal) end the process on the spot.
``unwind_on_signals`` turns them into a :class:`Terminated` exception, and
``run_interruptible`` wraps a command's entry point with it: temp files are removed, MLflow
runs are ended, and the process exits 130/143 with one line on stderr instead of a traceback.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

_TEMP_ATTEMPTS = 100
# Signals whose default action kills the process without unwinding (SIGINT already raises).
UNWOUND_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


# --------------------------------------------------------------------------- atomic files
def temp_name(target: Path) -> str:
    """``.<target name>.<random>.tmp``: hidden, in the target's folder, never a real output."""
    return f".{target.name}.{secrets.token_hex(4)}.tmp"


# A Ctrl-C/SIGTERM handler can run the moment os.open or mkdir returns, before the new
# temp file or folder reaches the code that would remove it, so the creators below remove
# it themselves; under its random name, an existing temp path is one they just made.


def _create_temp(target: Path, permissions: int) -> tuple[int, Path]:
    """Create an exclusive new temp file beside ``target``; the umask applies to its mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TEMP_ATTEMPTS):
        tmp = target.parent / temp_name(target)
        try:
            return os.open(tmp, flags, permissions), tmp
        except FileExistsError:
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)  # the fd, if any, closes with the process
            raise
    raise FileExistsError(f"no free temp file name beside {target}")


def make_temp_dir(target: Path) -> Path:
    """Create an empty hidden folder beside ``target`` (mode ``0o777`` less the umask)."""
    for _ in range(_TEMP_ATTEMPTS):
        tmp = target.parent / temp_name(target)
        try:
            tmp.mkdir(0o777)
            return tmp
        except FileExistsError:
            continue
        except BaseException:
            with suppress(OSError):
                tmp.rmdir()
            raise
    raise FileExistsError(f"no free temp folder name beside {target}")


@contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
    durable: bool = True,
    permissions: int = 0o666,
    check: Callable[[Path], None] | None = None,
) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path`` for writing; on success it replaces ``path``.

    ``mode`` is ``"wb"`` or ``"w"`` (``encoding``/``newline`` as for ``open``). The file is
    created with ``permissions`` less the umask (``0o600`` for secrets). ``durable`` fsyncs
    the data before the rename, so a power cut never leaves an empty or torn file under the
    real name; caches of recomputable data may skip it for speed. ``check``, if given, gets
    the closed temp file's path before the rename and may raise to reject the content. On any
    exception (``KeyboardInterrupt`` and :class:`Terminated` included) the temp file is
    removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    fd, tmp = _create_temp(target, permissions)
    try:
        handle = os.fdopen(fd, mode, encoding=encoding, newline=newline)
    except BaseException:
        # Unlink first: a Ctrl-C inside fdopen can land after its file object took the fd
        # (in a codec written in Python, such as utf-8-sig's encoder), and that object
        # closes the fd as it fails, so closing it again raises EBADF.
        tmp.unlink(missing_ok=True)
        with suppress(OSError):
            os.close(fd)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- interruption
class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: raised in the main thread so ``with``/``finally`` unwind.

    A ``BaseException`` like ``KeyboardInterrupt``: ``except Exception`` must not swallow it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


class _SignalState:
    """What the handlers of :func:`unwind_on_signals` saw; only the main thread touches it."""

    received: int | None = None  # the first signal since run_interruptible started
    deferring: int = 0  # depth of signals_deferred blocks
    pending: int | None = None  # a signal held back by signals_deferred


def _interruption(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _on_signal(signum: int, frame: object) -> None:
    if _SignalState.received is None:
        _SignalState.received = signum
    if _SignalState.deferring:
        _SignalState.pending = _SignalState.pending or signum
        return
    raise _interruption(signum)


@contextmanager
def unwind_on_signals() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread, and
    SIGINT raises ``KeyboardInterrupt`` as usual, except inside :func:`signals_deferred`.

    Previous handlers are restored on exit. Outside the main thread (where Python cannot set
    handlers) this does nothing. A signal the parent set to be ignored stays ignored, and a
    SIGINT handler someone else installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in (*UNWOUND_SIGNALS, signal.SIGINT):
        handler = signal.getsignal(signum)
        if handler is signal.SIG_IGN:
            continue
        if signum == signal.SIGINT and handler is not signal.default_int_handler:
            continue
        previous[signum] = signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back until the block ends, then raise as usual.

    For calls into C++ that call back into Python (every TensorFlow call): an exception
    raised by a signal handler inside such a callback is mangled on its way out into an
    unrelated ``SystemError`` or ``AttributeError``. Blocks are short (a batch's forward
    pass, a model build or load: seconds at most; a Keras fit takes stops between batches
    with :func:`raise_if_stopped`). Also for writes that must land together. Nests; a no-op
    off the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SignalState.deferring += 1
    try:
        yield
    finally:
        _SignalState.deferring -= 1
        if not _SignalState.deferring and _SignalState.pending is not None:
            signum, _SignalState.pending = _SignalState.pending, None
            raise _interruption(signum)


def raise_if_stopped() -> None:
    """Raise a stop that :func:`signals_deferred` is holding back, now.

    For a safe point inside a long deferred call that runs Python between its C++ parts,
    such as a Keras callback between two training steps: the stop takes effect at the next
    batch, not when training ends.
    """
    if _SignalState.pending is not None and threading.current_thread() is threading.main_thread():
        signum, _SignalState.pending = _SignalState.pending, None
        raise _interruption(signum)


def run_interruptible(command: str, main: Callable[[], int | None]) -> int:
    """Run a command's ``main`` with :func:`unwind_on_signals`; return its exit status.

    Ctrl-C, SIGTERM and SIGHUP unwind ``main`` (temp files removed, runs ended) and give
    ``128 + signal`` with one line on stderr, no traceback. Once a signal has arrived the
    status says so whatever ``main`` made of it: an interruption that C code turned into
    another exception, or that an ``except Exception`` turned into an error status, is
    still an interruption.
    """
    _SignalState.received = _SignalState.pending = None
    try:
        with unwind_on_signals():
            status = main() or 0
    except (KeyboardInterrupt, Terminated) as exc:
        signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
    except BaseException:
        if _SignalState.received is None:
            raise
        signum = _SignalState.received
    else:
        if _SignalState.received is None:
            return status
        signum = _SignalState.received
    reason = "interrupted" if signum == signal.SIGINT else _interruption(signum)
    print(f"{command}: {reason}", file=sys.stderr)
    return 128 + signum
