"""Output files: refused before any work when they are an input or not a regular file; written atomically,
keeping the replaced file's mode, leaving no temporary file behind on SIGTERM or SIGINT."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nerfstudio_trim.core.files import TERMINATING_SIGNALS, check_output, write_atomic
from nerfstudio_trim.errors import TrimError

REPO = Path(__file__).resolve().parents[1]


def test_an_input_is_refused_as_output_also_through_links(tmp_path):
    scene = tmp_path / "x.nstrim"
    scene.write_bytes(b"scene")
    (tmp_path / "symlink.ply").symlink_to(scene)
    os.link(scene, tmp_path / "hardlink.ply")
    for output in (scene, tmp_path / "symlink.ply", tmp_path / "hardlink.ply", tmp_path / "." / "x.nstrim"):
        with pytest.raises(TrimError, match="it is the input"):
            check_output(output, tmp_path / "other.yml", scene)
    other = tmp_path / "other.ply"
    other.write_bytes(b"old")
    check_output(other, scene)  # another existing file, or a new one, is fine
    check_output(tmp_path / "new" / "scene.ply", scene)
    assert scene.read_bytes() == b"scene" and other.read_bytes() == b"old"


@pytest.mark.parametrize("kind", ["folder", "FIFO", "character device", "socket", "link to a FIFO"])
def test_what_is_not_a_regular_file_is_never_written(tmp_path, kind):
    import socket

    target = tmp_path / "out.ply"
    if kind == "folder":
        target.mkdir()
    elif kind == "FIFO":
        os.mkfifo(target)
    elif kind == "link to a FIFO":
        os.mkfifo(tmp_path / "fifo")
        target.symlink_to(tmp_path / "fifo")
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(target))
        server.close()  # the socket file stays
    else:
        target = Path("/dev/null")  # checked, never written: as root, replacing it would break the system
    before = os.stat(target)
    with pytest.raises(TrimError, match="not a regular file"):
        check_output(target)
    if kind != "character device":  # write_atomic refuses too (it is only called on /dev/null as above)
        with pytest.raises(TrimError, match="not a regular file"):
            write_atomic(target, b"data")
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    after = os.stat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)


def test_decode_refuses_its_input_as_output_before_reading(tmp_path):
    from nerfstudio_trim.cli import Decode

    scene = tmp_path / "x.nstrim"
    scene.write_bytes(b"not even a scene: refused before it is read")
    (tmp_path / "link.ply").symlink_to(scene)
    for output in (scene, tmp_path / "link.ply"):
        with pytest.raises(TrimError, match="it is the input"):
            Decode(file=scene, output=output).main()
    os.mkfifo(tmp_path / "fifo.ply")
    with pytest.raises(TrimError, match="it is a FIFO"):
        Decode(file=scene, output=tmp_path / "fifo.ply").main()
    assert scene.read_bytes().startswith(b"not even")


def test_eval_refuses_its_input_as_output_path_before_reading(tmp_path):
    from nerfstudio_trim.nerfstudio.evaluate import EvaluateFile

    scene = tmp_path / "x.nstrim"
    scene.write_bytes(b"scene")
    with pytest.raises(TrimError, match="it is the input"):
        EvaluateFile(file=scene, data=tmp_path / "no-data", output_path=scene, device="cpu").main()
    with pytest.raises(TrimError, match="it is a folder"):
        EvaluateFile(file=scene, data=tmp_path / "no-data", output_path=tmp_path, device="cpu").main()
    assert scene.read_bytes() == b"scene"


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755], ids=oct)
def test_a_replaced_file_keeps_its_mode(tmp_path, mode):
    target = tmp_path / "scene.ply"
    target.write_bytes(b"old")
    target.chmod(mode)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == mode


def test_a_new_file_gets_the_umask_mode(tmp_path):
    previous = os.umask(0o027)
    try:
        write_atomic(tmp_path / "scene.ply", b"new")
    finally:
        os.umask(previous)
    assert (tmp_path / "scene.ply").stat().st_mode & 0o777 == 0o640


def test_signal_handlers_are_restored_and_only_installed_from_the_main_thread(tmp_path):
    def custom(number, frame):
        pass

    previous = signal.signal(signal.SIGTERM, custom)
    try:
        before = {number: signal.getsignal(number) for number in TERMINATING_SIGNALS}
        write_atomic(tmp_path / "a", b"a")
        assert {number: signal.getsignal(number) for number in TERMINATING_SIGNALS} == before
        failures = []
        worker = threading.Thread(target=lambda: _collect(failures, write_atomic, tmp_path / "b", b"b"))
        worker.start()
        worker.join()
        assert failures == [] and (tmp_path / "b").read_bytes() == b"b"
    finally:
        signal.signal(signal.SIGTERM, previous)


def _collect(failures, function, *args):
    try:
        function(*args)
    except Exception as exc:  # signal.signal outside the main thread raises ValueError
        failures.append(exc)


# The child writes through write_atomic, whose fsync (after the data is in the temporary file) says
# "writing" and then waits for a line on stdin: a signal arrives mid-write, deterministically. It starts with
# Python's usual handlers (SIGINT: KeyboardInterrupt, SIGTERM: terminate), or with SIGTERM ignored.
CHILD = """
import signal, sys
from pathlib import Path
from nerfstudio_trim.core import files

signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[2] == "ignore SIGTERM" else signal.SIG_DFL)

def blocked_fsync(fd):
    print("writing", flush=True)
    sys.stdin.readline()

files.os.fsync = blocked_fsync
files.write_atomic(Path(sys.argv[1]), b"new" * 1_000_000)
print("finished", flush=True)
"""


def _write_in_child(target: Path, number: int, handlers: str) -> subprocess.CompletedProcess:
    """Run CHILD writing ``target``, send it signal ``number`` mid-write, then let it go on."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target), handlers], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)  # fmt: skip
    try:
        assert child.stdout.readline() == "writing\n", child.stderr.read()
        partial = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.") and p.name.endswith(".partial")]
        assert len(partial) == 1 and partial[0].stat().st_size == 3_000_000  # mid-write
        child.send_signal(number)
        out, err = child.communicate("go on\n", timeout=60)
    finally:
        child.kill()
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=lambda number: number.name)
def test_a_signal_mid_write_removes_the_temporary_file_and_still_ends_the_process(tmp_path, number):
    target = tmp_path / "scene.ply"
    target.write_bytes(b"old")
    result = _write_in_child(target, number, "usual")
    assert result.returncode == -number, result.stderr  # ended by the signal, as without write_atomic's handler
    assert "finished" not in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"] and target.read_bytes() == b"old"


def test_an_ignored_signal_stays_ignored(tmp_path):
    target = tmp_path / "scene.ply"
    result = _write_in_child(target, signal.SIGTERM, "ignore SIGTERM")
    assert result.returncode == 0 and result.stdout.endswith("finished\n"), result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"] and target.read_bytes() == b"new" * 1_000_000
