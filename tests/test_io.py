"""Atomic writes (umask-respecting modes, nothing left on failure) and signal unwinding."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest

from posterml.io import (
    Terminated,
    atomic_write,
    run_interruptible,
    signals_deferred,
    unwind_on_signals,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set a umask for one test, restoring the previous one."""
    saved = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(saved)


@pytest.mark.parametrize("value, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_follows_the_umask(tmp_path, umask, value, expected):
    umask(value)
    with atomic_write(tmp_path / "out.bin") as fh:
        fh.write(b"data")
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert mode_of(tmp_path / "out.bin") == expected


def test_secrets_can_ask_for_0600(tmp_path, umask):
    umask(0o022)
    with atomic_write(tmp_path / "token", "w", permissions=0o600) as fh:
        fh.write("secret")
    assert mode_of(tmp_path / "token") == 0o600


def test_text_mode_and_replacing_an_existing_file(tmp_path):
    target = tmp_path / "a.csv"
    target.write_text("old\n")
    with atomic_write(target, "w", newline="", encoding="utf-8") as fh:
        fh.write("é\r\n")
    assert target.read_bytes() == "é\r\n".encode()
    assert os.listdir(tmp_path) == ["a.csv"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path, error):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(error):
        with atomic_write(target, "w") as fh:
            fh.write("half")
            assert len(os.listdir(tmp_path)) == 2  # the hidden temp file beside it
            raise error()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_interrupt_while_opening_removes_the_temp(tmp_path):
    """Ctrl-C inside ``fdopen``, once its file object owns the descriptor (as when it lands
    in a codec written in Python, utf-8-sig's): no temp file, and the interrupt itself
    reaches the caller, not an EBADF from closing the descriptor twice."""
    import codecs

    class InterruptedEncoder(codecs.IncrementalEncoder):
        def __init__(self, errors="strict"):
            raise KeyboardInterrupt

    def search(name: str):
        if name != "posterml_test_interrupted":
            return None
        utf8 = codecs.lookup("utf-8")
        return codecs.CodecInfo(
            utf8.encode, utf8.decode, incrementalencoder=InterruptedEncoder, name=name
        )

    codecs.register(search)
    try:
        with pytest.raises(KeyboardInterrupt):
            with atomic_write(tmp_path / "a.txt", "w", encoding="posterml_test_interrupted"):
                pass
    finally:
        codecs.unregister(search)
    assert os.listdir(tmp_path) == []


def test_check_can_reject_the_content(tmp_path):
    def must_not_be_empty(tmp: Path) -> None:
        if tmp.stat().st_size == 0:
            raise ValueError("empty")

    with pytest.raises(ValueError, match="empty"):
        with atomic_write(tmp_path / "x.jpg", check=must_not_be_empty):
            pass
    assert os.listdir(tmp_path) == []
    with atomic_write(tmp_path / "x.jpg", check=must_not_be_empty) as fh:
        fh.write(b"\xff")
    assert os.listdir(tmp_path) == ["x.jpg"]


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_sigterm_unwinds_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught:
        with unwind_on_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            pytest.fail("SIGTERM did not raise")  # the handler runs before this call
    assert caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_signal_stays_ignored():
    saved = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with unwind_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, saved)


def test_run_interruptible_gives_the_shell_status(capsys):
    def killed() -> int:
        raise Terminated(signal.SIGTERM)

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_interruptible("posterml x", killed) == 143
    assert run_interruptible("posterml x", interrupted) == 130
    assert run_interruptible("posterml x", lambda: None) == 0
    assert run_interruptible("posterml x", lambda: 3) == 3
    err = capsys.readouterr().err
    assert "posterml x: terminated by SIGTERM" in err and "posterml x: interrupted" in err


def test_a_deferred_signal_waits_for_the_block_to_end():
    steps = []
    with pytest.raises(Terminated):
        with unwind_on_signals():
            with signals_deferred():
                with signals_deferred():  # nested: only the outermost end raises
                    os.kill(os.getpid(), signal.SIGTERM)
                    steps.append("inner block finished")
                steps.append("outer block finished")
            steps.append("after the blocks")
    assert steps == ["inner block finished", "outer block finished"]


def test_sigint_is_deferred_too():
    with pytest.raises(KeyboardInterrupt):
        with unwind_on_signals(), signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # the handler has run by now, and must not have raised
            finished = True
    assert finished


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_keeps_its_status_whatever_main_made_of_it(signum, capsys):
    """A stop that C code turned into another exception, or that ``except Exception``
    turned into an error status, still exits as the shell expects."""

    def mangled() -> int:
        try:
            os.kill(os.getpid(), signum)
            time.sleep(1)
        except BaseException as exc:  # what TensorFlow's C++ did to it
            raise AttributeError("'list' object has no attribute '_type_spec'") from exc
        return 0

    def swallowed() -> int:
        try:
            mangled()
        except Exception:
            return 2
        return 0

    assert run_interruptible("posterml x", mangled) == 128 + signum
    assert run_interruptible("posterml x", swallowed) == 128 + signum
    assert run_interruptible("posterml x", lambda: 3) == 3  # the next run starts clean
    with pytest.raises(AttributeError):  # without a signal, an error stays an error
        run_interruptible("posterml x", lambda: [].no_such_thing)
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Terminated])
def test_a_stop_as_the_temp_file_is_created_leaves_nothing(stop, tmp_path, monkeypatch):
    """A signal handler may run the moment ``os.open`` returns, before the caller holds the
    new file (the predict kill test hit that once in 80 runs): nothing may be left."""
    real_open = os.open

    def open_then_stop(path, flags, mode=0o777):
        real_open(path, flags, mode)
        raise stop() if stop is KeyboardInterrupt else stop(signal.SIGTERM)

    monkeypatch.setattr(os, "open", open_then_stop)
    with pytest.raises(stop):
        with atomic_write(tmp_path / "genres.csv", "w"):
            pytest.fail("the block must not run")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_environment_sets_and_unsets_then_puts_each_variable_back(monkeypatch):
    from posterml.tracking import environment

    monkeypatch.setenv("POSTERML_T_SET", "before")
    monkeypatch.delenv("POSTERML_T_UNSET", raising=False)
    with environment({"POSTERML_T_SET": None, "POSTERML_T_UNSET": "inside"}):
        assert "POSTERML_T_SET" not in os.environ
        assert os.environ["POSTERML_T_UNSET"] == "inside"
        os.environ["POSTERML_T_SET"] = "changed by the block"
    assert os.environ["POSTERML_T_SET"] == "before"
    assert "POSTERML_T_UNSET" not in os.environ
    with pytest.raises(RuntimeError), environment({"POSTERML_T_SET": "x"}):
        raise RuntimeError
    assert os.environ["POSTERML_T_SET"] == "before"
