"""Text from files and paths is shown as data: no markup, no terminal escape sequences, bounded length."""

import pytest

from nerfstudio_trim import errors
from nerfstudio_trim.core.codec.nstrim import encode, read_file
from nerfstudio_trim.core.text import printable
from nerfstudio_trim.errors import TrimError
from tests.test_codec import repack, scene_of

ESCAPES = "\x1b[2J\x1b[31mred\x1b]0;window title\x07\x1b[0m"  # clear screen, colour, terminal title
DATA_SEQUENCES = ("\x1b[2J", "\x1b[31m", "\x1b]0;", "\x07")
"""Those of ESCAPES: rich's own styling (on a colour terminal) uses others."""


def test_printable_removes_control_sequences_and_keeps_text():
    assert printable(f"a[/bold]{ESCAPES}.ply") == "a[/bold]red.ply"
    assert printable("line\none\ttwo\r\x00\x7f\x9b") == "line one two "
    assert printable("\u202egnp.exe") == "gnp.exe"  # a bidirectional override
    assert printable("caf\u00e9 \u2713 \U0001f600") == "caf\u00e9 \u2713 \U0001f600"
    assert printable(b"\xffname.ply".decode("utf-8", "surrogateescape")) == "\ufffdname.ply"
    assert printable(12.5) == "12.5"


@pytest.mark.parametrize("length", [301, 10_000, 1_000_000])
def test_printable_bounds_length_keeping_both_ends(length):
    text = "start" + "x" * (length - 8) + "end"
    shown = printable(text, max_chars=100)
    assert len(shown) <= 100 and shown.startswith("start") and shown.endswith("end")
    assert f"{length:,} characters" in shown
    assert printable("y" * 100, max_chars=100) == "y" * 100
    assert printable("y" * 50, max_chars=10) == "y" * 10


def test_error_lines_are_one_bounded_plain_line(capsys):
    message = f"{ESCAPES}bad\nname [/bold] " + "z" * 1_000_000
    errors._excepthook(TrimError, TrimError(message), None)
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n")
    assert "\x1b" not in err and "\x07" not in err and "bad name [/bold]" in err
    assert len(err) <= len("error: \n") + errors.ERROR_CHARS


def test_a_huge_header_string_makes_a_short_error(tmp_path, capsys):
    bad = tmp_path / "bad.nstrim"
    bad.write_bytes(repack(encode(scene_of(10)), lambda h: h.update(compression="\x1b[31m" + "c" * 900_000)))
    with pytest.raises(TrimError) as caught:
        read_file(bad)
    errors._excepthook(TrimError, caught.value, None)
    err = capsys.readouterr().err
    assert "bad.nstrim" in err and err.count("\n") == 1 and len(err) < 2 * errors.ERROR_CHARS and "\x1b" not in err


@pytest.fixture
def wide_console(monkeypatch):
    """A console wide enough that rich does not wrap the lines checked."""
    monkeypatch.setenv("COLUMNS", "5000")


HOSTILE_NAMES = ["a[/bold].nstrim", "b[red]x[/red].nstrim", f"c{ESCAPES}.nstrim", "d:smiley:.nstrim"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["closing tag", "tags", "escape sequences", "emoji code"])
def test_info_and_decode_print_hostile_names_and_header_strings_as_data(tmp_path, capsys, wide_console, name):
    from nerfstudio_trim.cli import Decode, Info

    hostile = f"[/bold][link=file:///etc]{ESCAPES}" + "s" * 180  # within the header's 256 characters
    scene = scene_of(10)
    scene.source = {"software": hostile, "method": "[bold]m[/bold]"}
    path = tmp_path / name  # "a[/bold].nstrim" is the file "bold].nstrim" in the folder "a["
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(encode(scene))
    Info(path).main()
    output = tmp_path / "x[1].ply"
    Decode(path, output).main()
    out = capsys.readouterr().out
    assert not any(sequence in out for sequence in DATA_SEQUENCES) and len(out) < 20_000 and "s" * 180 in out
    assert printable(path) in out and f"wrote {output}: 10 Gaussians" in out
    assert "source: {'software': '[/bold][link=file:///etc]" in out and "'method': '[bold]m[/bold]'" in out
    assert output.is_file()


def test_warnings_are_plain_text(capsys):
    from nerfstudio_trim.nerfstudio.console import warn

    warn(f"cannot read [/bold] {ESCAPES}")
    out = capsys.readouterr().out
    assert "warning: cannot read [/bold] red" in out and not any(sequence in out for sequence in DATA_SEQUENCES)
