"""relay.util.paths answers as os.path does for the paths the store and the hints build, so the
store could stop importing os (docs/startup.md) without changing a single file name."""

import os
import os.path

import pytest

from relay.util import paths

SAMPLES = [
    "",
    "/",
    "//",
    "///x",
    "/a",
    "/a/",
    "/a//",
    "/a/b",
    "/a//b",
    "/a/b/",
    "a",
    "a/b",
    "a/b/",
    "./x",
    "../x/y",
    "/home/me/.agent-relay/mailbox/0000.jsonl",
    "/with space/and 'quote'/f.json",
]


@pytest.mark.parametrize("path", SAMPLES)
def test_split_dirname_basename_answer_as_os_path(path):
    assert paths.split(path) == os.path.split(path)
    assert paths.dirname(path) == os.path.dirname(path)
    assert paths.basename(path) == os.path.basename(path)


@pytest.mark.parametrize(
    "parts",
    [("/a", "b"), ("/a/", "b"), ("/a", "b", "c.json"), ("", "b"), ("/a", "/abs", "c"), ("a", ""), ("/a", "", "c")],
)
def test_join_answers_as_os_path(parts):
    assert paths.join(*parts) == os.path.join(*parts)


def test_lexists_and_is_dir(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    (tmp_path / "to-d").symlink_to(tmp_path / "d")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("d", "f", "to-d", "dangling", "nowhere"):
        path = str(tmp_path / name)
        assert paths.lexists(path) == os.path.lexists(path), name
        assert paths.is_dir(path) == os.path.isdir(path), name
    assert paths.lexists("bad\0path") is False and paths.is_dir("bad\0path") is False


def test_make_dirs_creates_every_missing_level_with_the_mode(tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    paths.make_dirs(str(deep), 0o700)
    assert deep.is_dir() and (os.stat(tmp_path / "a").st_mode & 0o777) == 0o700
    paths.make_dirs(str(deep), 0o700)  # already there: fine, as exist_ok=True
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        paths.make_dirs(str(tmp_path / "file"))
    with pytest.raises(NotADirectoryError):
        paths.make_dirs(str(tmp_path / "file" / "below"))


def test_real_path_resolves_links_on_the_way(tmp_path):
    (tmp_path / "real" / "bin").mkdir(parents=True)
    (tmp_path / "real" / "bin" / "launcher").write_text("#!/bin/sh\n")
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "bin" / "alias").symlink_to("launcher")
    for path in (tmp_path / "linked" / "bin" / "launcher", tmp_path / "linked" / "bin" / "alias", tmp_path):
        assert paths.real_path(str(path)) == os.path.realpath(path)
    for missing in (tmp_path / "linked" / "missing", tmp_path / "linked" / "no" / "such" / "file.py"):
        assert paths.real_path(str(missing)) == os.path.realpath(missing)
    (tmp_path / "dangling").symlink_to(tmp_path / "linked" / "gone")
    assert paths.real_path(str(tmp_path / "dangling")) == os.path.realpath(tmp_path / "dangling")


def test_real_path_of_a_missing_file_needs_no_os(tmp_path):
    """A frozen module's __file__ names no file: resolving it (the hints' launcher, when relay runs
    without one) must not fall back to os.path, which would load os into a hook delivering mail."""
    import subprocess
    import sys

    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); from relay.util.paths import real_path; "
        "print(real_path(sys.argv[2])); print('os' in sys.modules)"
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    missing = str(tmp_path / "bundle" / "relay" / "usecases" / "launcher.py")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe, repo, missing], capture_output=True, text=True)
    assert done.stdout.split() == [os.path.realpath(missing), "False"], done.stderr
