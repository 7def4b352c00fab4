"""The hospital's documents say only what the repository holds.

docs/instructions_for_use.md, docs/hazards.md and docs/model_versions.md (and
docs/retention.md when it exists) are read by people who cannot check the code. Every pytest
node id they name must be a test that exists, every hazard must name the test that holds its
mitigation or say "no automated test", every `edge-run`, `steth-session` and `steth-console`
option and subcommand they show must be one the real argument parsers accept, and every
relative link and repository path must resolve. Each checker is also run on a broken
example, so the checks can fail.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from steth.host import bedside, remote, sessions
from tests.conftest import REPO_ROOT

DOC_NAMES = ("instructions_for_use.md", "hazards.md", "model_versions.md", "retention.md")
DOCS = [REPO_ROOT / "docs" / name for name in DOC_NAMES if (REPO_ROOT / "docs" / name).exists()]
HAZARDS = REPO_ROOT / "docs" / "hazards.md"
NO_TEST = "no automated test"

NODE_ID = re.compile(r"(tests/[\w/]+\.py)((?:::\w+)+)(\[[^\]`\s]*\])?")
TEST_FILE = re.compile(r"(?<![\w/])(tests/[\w/]+\.py)(?!::)")
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
REPO_PATH = re.compile(r"^(?:edge|host|models|tests|docs|scripts|hardware|firmware)/[\w./-]*$")
# Where a command line ends inside a code sample.
SHELL_BREAK = {"|", "||", ";", "&&", ">", ">>", "<", "#"}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- node ids

def node_id_problems(text: str, root: Path = REPO_ROOT) -> list[str]:
    """Node ids whose file is missing or lacks the named class or test function."""
    problems = []
    for match in NODE_ID.finditer(text):
        file, parts = match.group(1), match.group(2).split("::")[1:]
        path = root / file
        if not path.is_file():
            problems.append(f"{match.group(0)}: no file {file}")
            continue
        source = read(path)
        *classes, test = parts
        for name in classes:
            if not re.search(rf"^class {re.escape(name)}\b", source, re.M):
                problems.append(f"{match.group(0)}: no class {name} in {file}")
        if not re.search(rf"^\s*(?:(?:async\s+)?def {re.escape(test)}\(|class "
                         rf"{re.escape(test)}\b)", source, re.M):
            problems.append(f"{match.group(0)}: no def {test} in {file}")
    for match in TEST_FILE.finditer(text):
        if not (root / match.group(1)).is_file():
            problems.append(f"{match.group(1)}: no such test file")
    return problems


def node_ids(text: str) -> list[str]:
    return [m.group(0) for m in NODE_ID.finditer(text)]


# ----------------------------------------------------------------------------- hazards

def hazard_rows(text: str) -> list[list[str]]:
    """The numbered rows of the hazards table, as lists of cells."""
    rows = []
    for line in text.splitlines():
        if re.match(r"^\|\s*\d+\s*\|", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def hazard_row_problems(rows: list[list[str]]) -> list[str]:
    """Rows whose last cell (the test that holds it) names no test and does not say so."""
    problems = []
    for cells in rows:
        last = cells[-1]
        if not node_ids(last) and NO_TEST not in last.lower():
            problems.append(f"hazard {cells[0]}: neither a node id nor '{NO_TEST}': {last!r}")
    return problems


# ----------------------------------------------------------------------------- commands

def parser_options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def source_options(module: Path) -> set[str]:
    """Options a module adds with ``add_argument("--x", ...)`` (for parsers built inside a
    ``main`` that cannot be called without running the tool)."""
    return set(re.findall(r"add_argument\(\s*\"(-{1,2}[\w-]+)\"", read(module)))


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    return {"edge-run": bedside.build_parser(), "steth-session": sessions.build_parser(),
            "steth-console": remote.build_parser()}


def code_samples(text: str) -> list[str]:
    """Inline code spans and the lines of fenced blocks (a trailing backslash joins)."""
    samples = []
    for block in FENCE.findall(text):
        samples.extend(block.replace("\\\n", " ").splitlines())
    samples.extend(CODE_SPAN.findall(FENCE.sub("", text)))
    return samples


def words(sample: str) -> list[str]:
    """Shell words, with ``;`` and ``|`` always words of their own."""
    spaced = sample.replace(";", " ; ").replace("|", " | ")
    try:
        return shlex.split(spaced, comments=False)
    except ValueError:
        return spaced.split()


def command_problems(text: str, parsers: dict[str, argparse.ArgumentParser],
                     extra: dict[str, set[str]] | None = None) -> list[str]:
    """Subcommands and options, shown after a command name, that its parser does not know.

    ``parsers`` maps a command to its argparse parser (subcommands are checked for the
    ones that have them); ``extra`` maps a command to the options its source adds.
    """
    extra = extra or {}
    known = set(parsers) | set(extra)
    every_option = set().union(*(parser_options(p) for p in parsers.values()),
                               *(parser_options(s) for p in parsers.values()
                                 for s in subcommands(p).values()))
    problems = []
    for sample in code_samples(text):
        tokens = words(sample)
        if tokens and re.match(r"^--\w", tokens[0]) and len(tokens) <= 2 and not any(
                t.split("/")[-1] in known for t in tokens):
            flag = tokens[0].split("=")[0]
            if flag not in every_option:
                problems.append(f"`{sample}`: no command has the option {flag}")
        for start, token in enumerate(tokens):
            name = token.split("/")[-1]
            if name not in known:
                continue
            problems.extend(_check_line(name, tokens[start + 1:], parsers.get(name),
                                        extra.get(name), sample))
    return problems


def _check_line(name: str, tokens: list[str], parser: argparse.ArgumentParser | None,
                source: set[str] | None, sample: str) -> list[str]:
    problems = []
    options = parser_options(parser) if parser is not None else set(source or ())
    choices = subcommands(parser) if parser is not None else {}
    sub: argparse.ArgumentParser | None = None
    expects_value = False
    for token in (t.strip("[]") for t in tokens):  # "[--yes]": an optional option
        if token in SHELL_BREAK or token.startswith(("#", "|", ">", ";")):
            break
        if token.startswith("-") and token not in ("-", "--"):
            flag = token.split("=")[0].rstrip(",.")
            allowed = options | (parser_options(sub) if sub is not None else set())
            if flag not in allowed:
                where = f"{name} {next(k for k, v in choices.items() if v is sub)}" \
                    if sub is not None else name
                problems.append(f"`{sample}`: {where} has no option {flag}")
            action = _action(sub or parser, flag) if parser is not None else None
            expects_value = action is not None and action.nargs != 0 and "=" not in token
            continue
        if expects_value:
            expects_value = False
            continue
        if choices and sub is None:
            word = token.rstrip(",.")
            if word not in choices:
                problems.append(f"`{sample}`: {name} has no subcommand {word!r}")
                break
            sub = choices[word]
    return problems


def _action(parser: argparse.ArgumentParser | None, flag: str) -> argparse.Action | None:
    if parser is None:
        return None
    for action in parser._actions:
        if flag in action.option_strings:
            return action
    return None


def lodo_options() -> dict[str, set[str]]:
    return {"steth-lodo": source_options(REPO_ROOT / "models" / "lodo.py")}


# ----------------------------------------------------------------------------- links

def split_span_problems(text: str) -> list[str]:
    """Lines outside code blocks with an odd number of backticks: a code span broken over
    two lines, which the other checks would misread."""
    return [f"line with an unclosed `: {line.strip()!r}"
            for line in FENCE.sub("", text).splitlines() if line.count("`") % 2]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m) for m in re.findall(r"^#+\s+(.*)$", FENCE.sub("", read(path)), re.M)}


def link_problems(text: str, doc: Path, root: Path = REPO_ROOT) -> list[str]:
    """Relative links and backticked repository paths that point at nothing."""
    problems = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            problems.append(f"link {target}: no file {path}")
            continue
        if root.resolve() not in path.resolve().parents and path.resolve() != root.resolve():
            problems.append(f"link {target}: outside the repository")
        if anchor and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"link {target}: no heading #{anchor} in {path.name}")
    for span in CODE_SPAN.findall(FENCE.sub("", text)):
        if REPO_PATH.match(span) and not (root / span).exists():
            problems.append(f"`{span}`: no such path in the repository")
    return problems


# ----------------------------------------------------------------------------- the docs

def test_the_hospital_documents_exist():
    for name in ("instructions_for_use.md", "hazards.md", "model_versions.md"):
        assert (REPO_ROOT / "docs" / name).is_file(), name
    retention = "\n".join(read(d) for d in DOCS)
    assert re.search(r"^#+ Retention and deletion of recordings", retention, re.M)


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_node_id_names_a_test_that_exists(doc):
    assert node_id_problems(read(doc)) == []


def test_the_hazards_table_has_ten_rows_each_held_by_a_test_or_saying_none():
    rows = hazard_rows(read(HAZARDS))
    assert len(rows) >= 10, len(rows)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(len(r) == len(rows[0]) for r in rows), "rows with a stray | split a cell"
    assert hazard_row_problems(rows) == []


@pytest.mark.parametrize("topic", [
    "stethoscope unlike the training data", "stale", "simulated", "monitoring stops",
    "thresholds", "poor signal", "site", "crash", "disk", "name", "tls", "token",
    "sample rate", "diagnosis"])
def test_the_hazards_table_covers_the_hazards_a_ward_meets(topic):
    assert any(topic in " ".join(r[1:3]).lower() for r in hazard_rows(read(HAZARDS))), topic


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_command_shown_is_one_the_parsers_accept(doc):
    assert command_problems(read(doc), command_parsers(), lodo_options()) == []


def test_the_documents_show_the_commands_the_hospital_needs():
    text = "\n".join(read(d) for d in DOCS)
    for needed in ("steth-session delete", "steth-session export", "steth-session show",
                   "steth-session reclassify", "edge-run --model", "--yes"):
        assert needed in text, needed


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_code_span_is_on_one_line(doc):
    assert split_span_problems(read(doc)) == []


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_relative_link_and_path_resolves(doc):
    assert link_problems(read(doc), doc) == []


# ----------------------------------------------------------------------------- the checks fail

def test_a_missing_test_a_missing_class_and_a_missing_file_are_found():
    good = ("tests/foundation/test_model_pin.py::"
            "test_an_edited_threshold_is_refused_naming_the_field")
    assert node_id_problems(f"`{good}`") == []
    assert node_id_problems(f"`{good}[onnx]`") == []
    assert node_id_problems("`tests/host/test_dashboard_render.py::FakeClock`") == []
    broken = [good + "_not", "tests/host/test_nowhere.py::test_x",
              "tests/edge_io/test_serial_pty.py::NoClass::test_bytes_flow_both_ways",
              "tests/host/test_nowhere_at_all.py"]
    for text in broken:
        assert node_id_problems(f"`{text}`"), text


def test_a_hazard_row_without_a_test_is_found():
    rows = hazard_rows("| 1 | a | b | c | `tests/x.py::test_y` |\n| 2 | a | b | c | none |\n"
                       "| 3 | a | b | c | No automated test |\n")
    assert [p.split(":")[0] for p in hazard_row_problems(rows)] == ["hazard 2"]


def test_an_invented_option_or_subcommand_is_found():
    parsers, extra = command_parsers(), lodo_options()
    fine = ("`edge-run --model FILE`\n`steth-session --root DIR show ID`\n"
            "```\nsteth-session delete \"$dir\" --yes\nsteth-lodo x.toml --report\n```\n"
            "`--serve-insecure`\n`/opt/venv/bin/steth-session export S -o x.zip --force`\n")
    assert command_problems(fine, parsers, extra) == []
    for wrong in ("`edge-run --model-file FILE`", "`steth-session purge ID`",
                  "`steth-session delete ID --force`", "`steth-session --root D rollback`",
                  "```\nsteth-lodo x.toml --everything\n```", "`--auto-retention`",
                  "`steth-console --token SECRET`", "`steth-session delete ID [--all]`"):
        assert command_problems(wrong, parsers, extra), wrong


def test_a_broken_link_anchor_or_path_is_found():
    doc = REPO_ROOT / "docs" / "hazards.md"
    assert link_problems("[x](instructions_for_use.md#known-limits) `edge/model_pin.py`",
                         doc) == []
    assert split_span_problems("a `steth-session\ndelete` b")
    for wrong in ("[x](no_such_page.md)", "[x](instructions_for_use.md#no-such-heading)",
                  "`edge/no_such_module.py`", "[x](#no-heading-here)"):
        assert link_problems(wrong, doc), wrong
