"""Progress away from a terminal: plain lines on stderr, never silence for long, nothing when asked for none."""

from __future__ import annotations

from marl_distill.utils.progress import LogLines, progress_bar, stage


def test_lines_say_how_far_and_how_long(capsys):
    with LogLines(total=200, desc="teachers", unit="step", interval=0.0) as bar:
        bar.update(50)
        bar.update(150)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("teachers: 50/200 steps (25%), ") and "200/200" in lines[1]


def test_no_terminal_gets_lines_and_false_gets_nothing(capsys):
    assert isinstance(progress_bar(total=3, desc="evaluate", unit="play", progress=None), LogLines)  # pytest: no tty
    with stage("distill", progress=None):
        pass
    with stage("distill", progress=False):
        progress_bar(total=3, desc="evaluate", unit="play", progress=False).update(3)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "distill: started" and err[1].startswith("distill: done in ") and len(err) == 2
