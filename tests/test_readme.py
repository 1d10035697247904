"""Every command the README, the docs pages and the ``--help`` texts show, run in a fast
mode, so that none can rot (issue 13: the README's own ``model.width=40`` example exited with
status 2).

Where. The README's ``bash`` and ``python`` blocks run here, one test per block; the pages
under ``docs/`` run page by page, in reading order, in :mod:`test_docs`, with the helpers of
this file. A README block that a docs page shows too, to the letter, runs there only. The
checks across documents are here, over the README and every ``docs/**/*.md`` page
(:data:`DOCS`): every command is of a kind these tests know, the ``torchrun`` commands (slow),
the ``--set`` spans of the prose, the alignment recipe, and the examples' usage lines that no
page shows.

What runs, and how it is made fast. Only *known heavy arguments* are rewritten, never what
a command says about the model or the data's layout:

- The README's data files (``aligned_50.pkl``) are tiny synthetic MOSEI-profile pickles
  (16 / 8 / 8 samples) in a scratch working directory; the examples' synthetic data goes
  to a scratch ``$DHMD_CACHE``.
- ``dhmd train``: one seed unless the command gives ``--seeds``, and
  ``--set train.max_epochs=1 train.batch_size=8 train.accumulation_steps=1`` appended (not
  with ``--resume``, which reuses the run's saved configuration).
- ``dhmd synth``: ``--sizes 8,4,4``.
- ``python examples/*.py``: ``--quick`` added (tiny sizes, one epoch).
- ``torchrun``: run as ``python -m torch.distributed.run --standalone``, with the
  rewrites above; it starts two processes, so it is marked slow.

- ``python -c "..."``: the code is executed as written.

Not run: the quickstart's ``python3 -m venv``, ``.`` (activate) and ``pip install`` steps
(they install the package; ``.ci/run`` runs them), ``python -m pytest`` (this suite) and
``mkdocs`` (:mod:`test_docs` builds the site).
The ``python`` code blocks are executed as written. A command of a kind this file does not
know fails the test, so a new one cannot be skipped silently.

Examples in ``--help`` texts (``e.g. ...`` in an option's help, and the ``Usage::``
commands of the examples' docstrings) are parsed by the real parser, and ``dhmd train``'s
``--set`` examples are applied to the default configuration; a ``--set`` written inline in
the prose of any document is applied the same way.
"""

import ast
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_bert import save_tiny_bert

from dhmd_graph.cli import build_parser, main
from dhmd_graph.experiment import Experiment

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").rglob("*.md"))]  # every document whose commands run
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
FAST_TRAIN = ["--set", "train.max_epochs=1", "train.batch_size=8", "train.accumulation_steps=1"]
INSTALL_STEPS = ("python3 -m venv", ". ", "pip ")
NOT_RUN = ("python -m pytest", "mkdocs ")
# the work folder links the scratch files in, so readers report them as outside it
pytestmark = pytest.mark.filterwarnings("ignore::dhmd_graph.files.OutsideFolderWarning")


def bash_commands(text: str) -> list[list[str]]:
    """The commands of each ```bash block: one list per block, ``&&`` chains split and
    ``\\`` continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    commands = []
    for block in blocks:
        steps = []
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                steps += [step.strip() for step in line.split("&&")]
        commands.append(steps)
    return commands


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def inline_overrides(text: str) -> list[list[str]]:
    """The ``key=value`` items after ``--set`` in every inline code span of the prose."""
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL).replace("\n", " ")
    spans = re.findall(r"`([^`]*--set [^`]*)`", prose)
    return [[item for item in span.split("--set ", 1)[1].split()
             if "=" in item and not item.startswith("-")] for span in spans]


def fast_dhmd(args: list[str]) -> list[str]:
    """``dhmd`` arguments with the heavy ones made small (see the module docstring)."""
    args = list(args)
    if args[0] == "train" and "--resume" not in args:
        args += [] if "--seeds" in args else ["--seeds", "1111"]
        args += FAST_TRAIN
    if args[0] == "synth":
        if "--sizes" in args:
            del args[args.index("--sizes"):args.index("--sizes") + 2]
        args += ["--sizes", "8,4,4"]
    return args


def fast_example(words: list[str]) -> list[str]:
    """``python examples/X.py ...`` in its quick mode."""
    return words if "--quick" in words else [*words, "--quick"]


def kind(step: str) -> str:
    if step.startswith(INSTALL_STEPS):
        return "install"
    if step.startswith(NOT_RUN):
        return "not run"
    words = shlex.split(step)
    if words[0] in ("dhmd", "torchrun"):
        return words[0]
    if words[0] == "python" and words[1].startswith("examples/"):
        return "example"
    if words[0] == "python" and words[1] == "-c":
        return "snippet"
    return "unknown"


def name(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


DOC_BLOCKS = {doc: bash_commands(doc.read_text()) for doc in DOCS}
ALL_STEPS = [(doc, step) for doc, blocks in DOC_BLOCKS.items() for block in blocks
             for step in block]
README_BLOCKS = DOC_BLOCKS[README]
PAGE_BLOCKS = {tuple(block): doc for doc, blocks in DOC_BLOCKS.items() if doc != README
               for block in blocks}  # a README block shown by a page runs with the page


def write_sdk_files(folder: Path) -> None:
    """The alignment recipe of the docs (the ``json`` block with ``"features"``, as written)
    and tiny ``.csd`` files
    under the names it gives: one video of each built-in CMU-MOSI fold, 2 segments of 3 words,
    audio and vision frames at 10 Hz."""
    h5py = pytest.importorskip("h5py")
    import json

    import numpy as np

    from dhmd_graph.data.align import load_folds

    (recipe,) = [block for doc in DOCS
                 for block in re.findall(r"```json\n(.*?)```", doc.read_text(), flags=re.DOTALL)
                 if '"features"' in block]
    (folder / "mosi_sdk.json").write_text(recipe)
    recipe = json.loads(recipe)
    videos = [ids[0] for ids in load_folds(recipe["folds"]).values()]
    rng = np.random.default_rng(0)
    words = np.array([[0.0, 0.3], [0.3, 0.6], [0.6, 1.0], [1.2, 1.5], [1.5, 1.7], [1.7, 2.0]])
    frames = np.stack([np.arange(0, 2.0, 0.1), np.arange(0.1, 2.05, 0.1)], axis=1)
    widths = {"text": 4, "audio": 3, "vision": 2}
    entries = {"labels": {v: (rng.uniform(-3, 3, (2, 1)), [[0.0, 1.0], [1.2, 2.0]])
                          for v in videos}}
    for name, width in widths.items():
        intervals = words if name == "text" else frames
        entries[name] = {v: (rng.normal(size=(len(intervals), width)), intervals) for v in videos}
    files = {"labels": recipe["labels"], **recipe["features"]}
    for name, file in files.items():
        with h5py.File(folder / file, "w") as handle:
            group = handle.create_group(name)
            for video, (features, intervals) in entries[name].items():
                group[f"data/{video}/features"] = features
                group[f"data/{video}/intervals"] = np.asarray(intervals, dtype=np.float64)
            metadata = group.create_group("metadata")
            metadata.create_dataset("root name", (1,), dtype=h5py.string_dtype())[0] = name


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A tiny ``aligned_50.pkl``, the same data as the plain-arrays folder ``my_data/``, a
    folder of IEMOCAP-6-profile class labels ``my_classes/`` and its test clips without
    labels ``new_clips/``, the alignment recipe's files and a shared ``$DHMD_CACHE`` for the examples' data."""
    from dhmd_graph.data import load_dataset
    from dhmd_graph.data.arrays import write_arrays
    from dhmd_graph.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("readme")
    data = write_synthetic(root / "aligned_50.pkl", "mosei",
                           sizes={"train": 16, "valid": 8, "test": 8})
    write_arrays(load_dataset(data), root / "my_data")
    from dhmd_graph.data import MultimodalDataset
    from dhmd_graph.data.synthetic_tasks import write_synthetic_task

    emotions = write_synthetic_task(root / "iemocap6.pkl", "iemocap6",
                                    sizes={"train": 16, "valid": 8, "test": 8})
    splits = load_dataset(emotions)
    write_arrays(splits, root / "my_classes")  # class labels with their names
    test = splits["test"]  # the same clips without labels, test split only
    write_arrays({"test": MultimodalDataset(test.features, test.lengths, None, test.ids)},
                 root / "new_clips")
    write_sdk_files(root)
    return {"root": root, "cache": root / "cache"}


@pytest.fixture
def workdir(scratch, tmp_path, monkeypatch):
    for path in scratch["root"].iterdir():
        if path.name != "cache":
            (tmp_path / path.name).symlink_to(path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DHMD_CACHE", str(scratch["cache"]))
    return tmp_path


def load_example(path: Path):
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_step(step: str, capsys) -> None:
    """Runs one documented command in the current directory, in its fast mode."""
    words = shlex.split(step)
    if kind(step) == "dhmd":
        status = main(fast_dhmd(words[1:]))
    elif kind(step) == "example":
        status = load_example(ROOT / words[1]).main(fast_example(words)[2:])
    elif kind(step) == "snippet":
        exec(compile(words[2], step, "exec"), {})
        status = 0
    else:
        raise AssertionError(f"test_readme cannot run {step!r}; teach it this kind of command")
    captured = capsys.readouterr()
    assert status == 0, f"{step!r} exited {status}:\n{captured.out[-2000:]}{captured.err[-2000:]}"


def test_the_docs_have_the_commands_these_tests_know():
    unknown = [f"{name(doc)}: {step}" for doc, step in ALL_STEPS if kind(step) == "unknown"]
    assert unknown == []
    kinds = [kind(step) for _, step in ALL_STEPS]
    assert {"install", "not run", "dhmd", "example", "torchrun", "snippet"} <= set(kinds)
    assert kinds.count("dhmd") >= 25  # the extraction found the command blocks
    assert len({doc for doc, _ in ALL_STEPS}) >= 8  # ... of the README and the pages
    assert sum(kind(step) == "dhmd" for step in sum(README_BLOCKS, [])) >= 5


def prepare_python_block(code: str, folder: Path) -> None:
    """What a documented ``python`` block loads that a test must make: a tiny random BERT
    under the name the docs load (skips without ``transformers``)."""
    if "BertTextEncoder(" in code and not (folder / "bert-base-uncased").exists():
        pytest.importorskip("transformers")
        save_tiny_bert(folder / "bert-base-uncased", vocab_size=8000,
                       max_position_embeddings=64)


@pytest.mark.parametrize("block", range(len(README_BLOCKS)),
                         ids=[f"README.md:block{i}" for i in range(len(README_BLOCKS))])
def test_readme_bash_block_runs(block, workdir, capsys):
    steps = [step for step in README_BLOCKS[block] if kind(step) in ("dhmd", "example")]
    if not steps:
        pytest.skip("installs and the test suite only (see the module docstring)")
    if tuple(README_BLOCKS[block]) in PAGE_BLOCKS:
        pytest.skip(f"runs with {name(PAGE_BLOCKS[tuple(README_BLOCKS[block])])} (test_docs)")
    for step in steps:
        run_step(step, capsys)


@pytest.mark.slow  # two processes under torchrun: ~30 s on 2 cores
def test_readme_torchrun_commands_run(workdir):
    steps = [step for _, step in ALL_STEPS if kind(step) == "torchrun"]
    assert steps
    for step in steps:
        words = shlex.split(step)
        module = words.index("dhmd_graph.cli")
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   *words[1:module + 1], *fast_dhmd(words[module + 1:])]
        environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        done = subprocess.run(command, env=environment, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("code", python_blocks(README.read_text()),
                         ids=lambda code: f"README.md:{code.splitlines()[0][:40]}")
def test_readme_python_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prepare_python_block(code, tmp_path)
    exec(compile(code, str(README), "exec"), {})


@pytest.mark.parametrize("doc", DOCS, ids=name)
def test_inline_overrides_apply(doc):
    for items in inline_overrides(doc.read_text()):
        args = build_parser().parse_args(["train", "--set", *items])
        Experiment.assemble(overrides=args.overrides)


def test_inline_overrides_were_found():
    overrides = [items for doc in DOCS for items in inline_overrides(doc.read_text())]
    assert any("train.device=cuda:1" in items for items in overrides)
    assert len(overrides) >= 5


def help_examples() -> list[list[str]]:
    """``dhmd`` argument lists built from every ``e.g. ...`` in an option's help."""
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    examples = []
    for name, command in commands.choices.items():
        positionals = [f"{a.dest}.pkl" for a in command._actions
                       if not a.option_strings and a.nargs != 0]
        for action in command._actions:
            found = re.search(r"e\.g\. (.+?)(?: \(|\)|$)", action.help or "")
            if found and action.option_strings:
                examples.append([name, *positionals, action.option_strings[0],
                                 *found[1].split()])
    return examples


@pytest.mark.parametrize("argv", help_examples(),
                         ids=lambda argv: " ".join([argv[0], *(a for a in argv if a[:2] == "--")]))
def test_help_examples_parse(argv):
    args = build_parser().parse_args(argv)  # a bad example exits here
    if args.command == "train":
        Experiment.assemble(overrides=args.overrides)  # they build a valid configuration


def test_help_examples_were_found():
    assert any("model.width=40" in argv for argv in help_examples())


def example_usage() -> list[str]:
    """The ``python examples/...`` commands in the examples' docstrings (their --help)."""
    usage = []
    for path in EXAMPLES:
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        usage += [line.split("#")[0].strip() for line in docstring.splitlines()
                  if line.strip().startswith("python examples/")]
    return usage


def new_example_usage() -> list[str]:
    """:func:`example_usage` less the commands the documents already run (in quick mode)."""
    def fast(step: str) -> str:
        return shlex.join(fast_example(shlex.split(step)))

    known = {fast(step) for _, step in ALL_STEPS if kind(step) == "example"}
    new = {fast(step): step for step in example_usage()}
    return sorted(step for command, step in new.items() if command not in known)


def test_example_usage_was_found():
    assert "python examples/mosei_dhmd.py --quick" in example_usage()


@pytest.mark.parametrize("step", new_example_usage())
def test_example_usage_runs(step, workdir, capsys):
    run_step(step, capsys)


def test_the_docs_hold_no_merge_conflict_markers():
    # A merge once left "<<<<<<< HEAD" ... ">>>>>>> main" in the CHANGELOG.
    documents = [*DOCS, ROOT / "CHANGELOG.md", *ROOT.glob("*/README.md")]
    markers = [f"{path.relative_to(ROOT)}:{number}"
               for path in documents
               for number, line in enumerate(path.read_text().splitlines(), start=1)
               if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "======="]
    assert markers == []
