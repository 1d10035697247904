"""The documentation site and the repository's citation files.

- The site (``mkdocs.yml``, ``docs/``) builds with ``mkdocs build --strict``: a broken link,
  a missing page in the nav, an API reference to a name that does not exist, or a docstring
  mkdocstrings cannot read fails the build (about 10 s; needs the ``dev`` extra).
- The command-line page holds every subcommand and option of the real parser.
- Every page's ``python`` blocks, ``python -c`` commands, ``dhmd`` commands and
  ``python examples/...`` commands (in :mod:`test_readme`'s fast mode) run in order, in a
  scratch folder that holds the README's tiny data files (``aligned_50.pkl``, ``my_data/``)
  and what the page starts from (:data:`PAGE_SET_UP`: the recordings guide gets generated
  recordings). Installs and the test suite are not run; the ``torchrun`` commands run in
  :mod:`test_readme` (slow). A block that needs what a test cannot have (a download) is
  preceded by a line ``<!-- not run: REASON -->``.
- ``CITATION.cff`` is valid YAML whose version is the package's; the BibTeX agrees.
- No file of the repository cites the word of an internal notes file that users do not have.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_readme import fast_dhmd, kind, prepare_python_block, run_step, scratch, workdir  # noqa: F401 (fixtures)

import dhmd_graph
from dhmd_graph.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md"))
FENCE = re.compile(r"(?:<!-- not run: (?P<reason>[^>]+?) -->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```",
                   re.DOTALL)
# commands of the docs' bash blocks that set up a machine or the repository, not the library
SET_UP = ("python3 -m venv", ". .venv", "pip ", "python -m pytest", "mkdocs ")


def bash_steps(code: str) -> list[str]:
    """The commands of a bash block (comments dropped, ``&&`` chains and ``\\`` lines joined)."""
    steps = []
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            steps += [step.strip() for step in line.split("&&")]
    return steps


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("material")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT),
                               "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_the_site_builds_with_warnings_as_errors(site):
    for page in ("index.html", "install/index.html", "cli/index.html", "citing/index.html",
                 "api/layer/index.html", "guide/recordings/index.html"):
        assert (site / page).is_file(), page
    layer = (site / "api/layer/index.html").read_text()
    assert "logit_channels" in layer and "doc-signature" in layer  # mkdocstrings rendered it
    assert ":math:`" not in layer and ":class:`" not in layer  # the reST was rewritten


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [str(p.relative_to(ROOT / "docs")) for p in PAGES
               if str(p.relative_to(ROOT / "docs")) not in nav]
    assert missing == []


def test_the_cli_page_holds_every_command_and_option(site):
    import html

    page = html.unescape((site / "cli/index.html").read_text())
    (commands,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert len(commands.choices) >= 8
    for name, command in commands.choices.items():
        assert f"dhmd {name}" in page, name
        for action in command._actions:
            for option in action.option_strings:
                assert option in page, f"dhmd {name} {option}"


def page_steps(page: Path) -> list[tuple[str, str, str, str | None]]:
    """``(where, kind, code, reason not run)`` for the page's blocks, in reading order; a bash
    block gives one ``("bash", command)`` per command."""
    text, steps = page.read_text(), []
    for match in FENCE.finditer(text):
        where = f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, match.start('lang')) + 1}"
        if match["lang"] == "python":
            steps.append((where, "python", match["code"], match["reason"]))
        elif match["lang"] == "bash":
            steps += [(where, "bash", step, match["reason"]) for step in bash_steps(match["code"])]
    return steps


def write_recordings(folder: Path) -> None:
    """What the recordings guide starts from: ``recordings/`` with two short videos and an
    audio file, each with a transcript of two cues, and ``labels.csv`` (one recording per
    split), in place of the README's ``my_data/``, which the guide writes itself."""
    from recordings import voice, write_audio, write_srt, write_video

    (folder / "my_data").unlink()
    media = folder / "recordings"
    media.mkdir()
    cues = [(0.0, 1.0, "so this is fine"), (1.0, 2.0, "not good at all")]
    for name in ("clip1", "clip2"):
        write_video(media / f"{name}.mp4", 2.0)
        write_srt(media / f"{name}.srt", cues)
    write_audio(media / "clip3.wav", voice(2.0, 200.0))
    write_srt(media / "clip3.srt", cues)
    (folder / "labels.csv").write_text("id,label,split\nclip1,1.5,train\nclip2,-1.0,valid\n"
                                       "clip3,0.5,test\n")


# pages whose blocks need files of their own first, and the extras they need
PAGE_SET_UP = {"docs/guide/recordings.md": (write_recordings, ("av", "cv2", "librosa"))}
SLOW_PAGES = {"docs/guide/recordings.md"}  # decodes and extracts media: ~20 s on 2 cores


def test_the_docs_have_code_blocks_and_run_most():
    steps = [step for page in PAGES for step in page_steps(page)]
    assert sum(kind == "python" for _, kind, _, _ in steps) >= 5
    assert sum(reason is None for _, _, _, reason in steps) >= 0.8 * len(steps)


# the work folder links the scratch files in, so readers report them as outside it
@pytest.mark.filterwarnings("ignore::dhmd_graph.files.OutsideFolderWarning")
@pytest.mark.parametrize("page", [
    pytest.param(page, marks=[pytest.mark.slow] * (str(page.relative_to(ROOT)) in SLOW_PAGES),
                 id=str(page.relative_to(ROOT)))
    for page in PAGES if page_steps(page)])
def test_docs_page_runs(page, workdir, capsys):  # noqa: F811 (the fixture)
    """A page's ``python`` blocks and ``dhmd`` commands, in order, in one folder, as a
    reader following the page would run them (``dhmd`` commands in the fast mode)."""
    set_up, extras = PAGE_SET_UP.get(str(page.relative_to(ROOT)), (None, ()))
    for extra in extras:
        pytest.importorskip(extra)
    if set_up:
        set_up(workdir)
    for where, step_kind, code, reason in page_steps(page):
        if reason:
            continue
        if step_kind == "python":
            prepare_python_block(code, workdir)
            exec(compile(code, where, "exec"), {})
        elif step_kind == "bash" and code.startswith("python -c "):
            exec(compile(shlex.split(code)[2], where, "exec"), {})
        elif kind(code) == "dhmd":
            status = main(fast_dhmd(shlex.split(code)[1:]))
            captured = capsys.readouterr()
            assert status == 0, f"{where}: {code!r} exited {status}:\n{captured.err[-2000:]}"
        elif kind(code) == "example":
            run_step(code, capsys)
        elif kind(code) == "torchrun":
            continue  # two processes: test_readme's slow torchrun test runs every page's
        else:
            assert code.startswith(SET_UP), (f"{where}: teach test_docs.py to run {code!r}, "
                                              "or mark its block <!-- not run: REASON -->")


def test_citation_file_is_valid_and_names_this_version():
    yaml = pytest.importorskip("yaml")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert {"message", "title", "authors", "version"} <= set(citation)
    (version,) = re.findall(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert str(citation["version"]) == version == dhmd_graph.__version__
    titles = [reference["title"] for reference in citation["references"]]
    assert any("Hierarchical" in title for title in titles)  # DHMD
    assert "Decoupled Multimodal Distilling for Emotion Recognition" in titles  # DMD
    bibtex = (ROOT / "docs/citing.md").read_text()
    assert f"version = {{{version}}}" in bibtex
    assert all(title.split(":")[0] in bibtex for title in titles)


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        skip = {".git", ".venv", "site", "runs", "build", "dist"}
        listed = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                  if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    suffixes = {".py", ".md", ".toml", ".yml", ".yaml", ".cff", ".json", ".txt", ".cfg", ""}
    return [ROOT / name for name in listed if Path(name).suffix in suffixes
            and (ROOT / name).is_file()]


def test_no_file_cites_the_internal_notes():
    # The code once cited sections of a notes file that is not in the repository; explain
    # in place instead. The word is spelt in two halves here so that this file passes.
    word = re.compile(r"\b" + "SP" + r"EC\b")
    found = [f"{path.relative_to(ROOT)}:{number}"
             for path in tracked_text_files()
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if word.search(line)]
    assert found == []
