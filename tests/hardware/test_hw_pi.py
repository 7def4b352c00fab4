"""Raspberry Pi deployment files: udev rule, systemd unit and the install steps agree."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hw_support import PI_DIR, REPO_ROOT, require, require_tool

RULE_PATH = PI_DIR / "99-stethoscope.rules"
UNIT_PATH = PI_DIR / "stethoscope.service"
INSTALL_PATH = PI_DIR / "INSTALL.md"
PLACEHOLDER = "@FTDI_SERIAL@"
EDGE_RUN_ARGS = ["--port", "/dev/stethoscope", "--record", "/var/lib/stethoscope/recordings",
                 "--no-dashboard"]

# ------------------------------------------------------------------ udev rule parser
# Debian 12's udev has no `udevadm verify`, so the rule syntax is checked here
# (udev(7): KEY[{attr}] OPERATOR "value", comma separated, backslash continues a line).

_MATCH_ONLY = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER",
               "DRIVERS", "ATTRS", "TAGS", "TEST", "PROGRAM", "RESULT", "CONST"}
_ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "OPTIONS"}
_BOTH = {"NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG", "IMPORT"}
_NEEDS_ATTR = {"ATTR", "ATTRS", "SYSCTL", "ENV", "IMPORT", "SECLABEL", "CONST"}
_TOKEN = re.compile(
    r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]*)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*'
    r'"(?P<value>(?:[^"\\]|\\.)*)"\s*(?P<sep>,|$)'
)


@dataclass(frozen=True)
class UdevPair:
    key: str
    attr: str | None
    op: str
    value: str


class UdevSyntaxError(ValueError):
    pass


def logical_lines(text: str) -> list[str]:
    lines, pending = [], ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    if pending.strip():
        raise UdevSyntaxError("file ends inside a continued line")
    return lines


def parse_udev_rule(line: str) -> list[UdevPair]:
    pairs, pos = [], 0
    while pos < len(line):
        match = _TOKEN.match(line, pos)
        if match is None:
            raise UdevSyntaxError(f"cannot parse at column {pos}: {line[pos:]!r}")
        pair = UdevPair(match["key"], match["attr"], match["op"], match["value"])
        _check_pair(pair)
        pairs.append(pair)
        pos = match.end()
        if match["sep"] == "" and pos < len(line):
            raise UdevSyntaxError(f"missing comma at column {pos}")
    if not pairs:
        raise UdevSyntaxError("empty rule")
    return pairs


def _check_pair(pair: UdevPair) -> None:
    is_match = pair.op in ("==", "!=")
    if pair.key not in _MATCH_ONLY | _ASSIGN_ONLY | _BOTH:
        raise UdevSyntaxError(f"unknown key {pair.key}")
    if pair.key in _MATCH_ONLY and not is_match:
        raise UdevSyntaxError(f"{pair.key} can only be matched (==, !=)")
    if pair.key in _ASSIGN_ONLY and is_match:
        raise UdevSyntaxError(f"{pair.key} can only be assigned")
    if pair.key in _NEEDS_ATTR and not pair.attr:
        raise UdevSyntaxError(f"{pair.key} needs {{attribute}}")
    if pair.key == "MODE" and not re.fullmatch(r"0?[0-7]{3}", pair.value):
        raise UdevSyntaxError(f"MODE must be octal, got {pair.value!r}")
    if pair.key == "SYMLINK" and pair.value.startswith("/"):
        raise UdevSyntaxError("SYMLINK is relative to /dev")


def load_rule(text: str) -> dict[str, UdevPair]:
    lines = logical_lines(text)
    assert len(lines) == 1, "exactly one rule"
    pairs = parse_udev_rule(lines[0])
    return {p.key + (f"{{{p.attr}}}" if p.attr else ""): p for p in pairs}


# ------------------------------------------------------------------ systemd unit parser


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


UNIT = parse_unit(UNIT_PATH.read_text())
SERVICE = UNIT["Service"]


def one(key: str) -> str:
    values = SERVICE[key]
    assert len(values) == 1, key
    return values[0]


# ------------------------------------------------------------------ install doc parser


def install_commands() -> list[list[str]]:
    """Shell commands in the ```sh blocks of INSTALL.md, without a leading sudo."""
    blocks = re.findall(r"```sh\n(.*?)```", INSTALL_PATH.read_text(), re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            words = shlex.split(line)
            commands.append(words[1:] if words[0] == "sudo" else words)
    return commands


COMMANDS = install_commands()


def commands_starting(*prefix: str) -> list[list[str]]:
    return [c for c in COMMANDS if c[: len(prefix)] == list(prefix)]


# ------------------------------------------------------------------ udev tests


def test_udev_rule_matches_ft232r_by_serial_and_names_it():
    rule = load_rule(RULE_PATH.read_text())
    assert rule["SUBSYSTEM"] == UdevPair("SUBSYSTEM", None, "==", "tty")
    assert rule["ATTRS{idVendor}"].value == "0403" and rule["ATTRS{idVendor}"].op == "=="
    assert rule["ATTRS{idProduct}"].value == "6001" and rule["ATTRS{idProduct}"].op == "=="
    assert rule["ATTRS{serial}"] == UdevPair("ATTRS", "serial", "==", PLACEHOLDER)
    assert rule["SYMLINK"] == UdevPair("SYMLINK", None, "+=", "stethoscope")
    assert rule["GROUP"].value == "dialout"
    assert rule["MODE"].value == "0660"


def test_udev_rule_with_a_real_serial_still_parses():
    text = RULE_PATH.read_text().replace(PLACEHOLDER, "A50285BI")
    assert load_rule(text)["ATTRS{serial}"].value == "A50285BI"


@pytest.mark.parametrize("bad", [
    'SUBSYSTEM="tty", SYMLINK+="x"',                 # match-only key assigned
    'SUBSYSTEM=="tty" SYMLINK+="x"',                 # missing comma
    'SUBSYSTEM=="tty", SYMLNK+="x"',                 # unknown key
    'SUBSYSTEM=="tty", ATTRS=="0403"',               # attribute missing
    'SUBSYSTEM=="tty", MODE="rw-rw----"',            # MODE not octal
    'SUBSYSTEM=="tty", GROUP=="dialout"',            # assign-only key matched
    'SUBSYSTEM=="tty", SYMLINK+=stethoscope',        # value not quoted
    'SUBSYSTEM=="tty", SYMLINK+="/dev/stethoscope"',  # absolute symlink
])
def test_udev_parser_rejects_broken_rules(bad):
    with pytest.raises(UdevSyntaxError):
        parse_udev_rule(bad)


# ------------------------------------------------------------------ unit tests


def test_unit_runs_edge_run_headless_as_non_root():
    exec_start = shlex.split(one("ExecStart"))
    assert Path(exec_start[0]).name == "edge-run" and Path(exec_start[0]).is_absolute()
    assert exec_start[1:] == EDGE_RUN_ARGS
    assert one("User") not in ("root", "0")
    assert one("Restart") == "on-failure"
    assert UNIT["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_sandboxing():
    expected = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                "PrivateTmp": "yes", "DevicePolicy": "closed", "UMask": "0077",
                "StateDirectoryMode": "0700", "RestrictSUIDSGID": "yes"}
    for key, value in expected.items():
        assert one(key) == value, key
    assert "char-ttyUSB rw" in SERVICE["DeviceAllow"]
    assert "PrivateDevices" not in SERVICE, "PrivateDevices would hide the serial port"
    assert one("CapabilityBoundingSet") == ""


def test_unit_device_and_recording_paths_match_the_rule():
    rule = load_rule(RULE_PATH.read_text())
    exec_start = shlex.split(one("ExecStart"))
    port = exec_start[exec_start.index("--port") + 1]
    assert port == "/dev/" + rule["SYMLINK"].value
    assert rule["GROUP"].value in one("SupplementaryGroups").split()
    record = Path(exec_start[exec_start.index("--record") + 1])
    state_dirs = one("StateDirectory").split()
    assert record.parent == Path("/var/lib") / state_dirs[0]
    assert str(record.relative_to("/var/lib")) in state_dirs


def installed_edge_run() -> Path:
    """edge-run from a real install of this repo: the lean runtime venv that
    scripts/setup-test builds (as on the Pi), else the venv running these tests."""
    for candidate in (REPO_ROOT / ".venv-runtime" / "bin" / "edge-run",
                      Path(sys.executable).parent / "edge-run"):
        if candidate.is_file():
            return candidate
    require(False, "no installed edge-run: run scripts/setup-test or pip install -e .")
    raise AssertionError("unreachable")


def _unit_for_verify(tmp_path: Path) -> Path:
    # systemd-analyze verify insists the ExecStart binary exists, so the temporary copy of
    # the unit points ExecStart at an installed edge-run; everything else is unchanged.
    original = shlex.split(one("ExecStart"))[0]
    unit = tmp_path / UNIT_PATH.name
    unit.write_text(UNIT_PATH.read_text().replace(original, str(installed_edge_run())))
    return unit


def test_edge_run_accepts_the_unit_arguments():
    proc = subprocess.run([str(installed_edge_run()), "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    # Option definitions only ("  --port DEV   ..."), not examples in the epilog.
    offered = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][\w-]*)", proc.stdout, re.M))
    assert "--port" in offered, proc.stdout
    options = [arg for arg in shlex.split(one("ExecStart"))[1:] if arg.startswith("--")]
    missing = [opt for opt in options if opt not in offered]
    assert missing == [], f"edge-run does not offer {missing} (edge/cli.py)"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    tool = require_tool("systemd-analyze")
    unit = _unit_for_verify(tmp_path)
    proc = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    # Unknown keys only warn (exit 0), so any output about the unit is a failure too.
    assert proc.returncode == 0, proc.stderr
    assert unit.name not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_systemd_analyze_verify_catches_a_broken_copy(tmp_path):
    tool = require_tool("systemd-analyze")
    unit = _unit_for_verify(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectSystem=", "ProtectSystm="))
    proc = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert "ProtectSystm" in proc.stderr


def test_systemd_security_exposure_is_low(tmp_path):
    tool = require_tool("systemd-analyze")
    unit = _unit_for_verify(tmp_path)
    proc = subprocess.run([tool, "security", "--offline=yes", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout[-500:] + proc.stderr
    assert float(match.group(1)) <= 2.0  # systemd's scale: 0 safest .. 10 unsafe


# ------------------------------------------------------------------ install doc tests


def test_install_puts_the_udev_rule_in_place_with_the_serial():
    rule_dest = "/etc/udev/rules.d/" + RULE_PATH.name
    seds = [c for c in COMMANDS if c[0] == "sed" and str(RULE_PATH.relative_to(REPO_ROOT)) in c]
    assert len(seds) == 1
    assert PLACEHOLDER in seds[0][1] and rule_dest in seds[0]
    assert commands_starting("chmod", "0644", rule_dest)
    assert commands_starting("udevadm", "control", "--reload-rules")
    assert commands_starting("udevadm", "trigger", "--subsystem-match=tty")


def test_install_sed_step_produces_a_valid_rule():
    # Run the doc's own sed expression (serial variable filled in) on the shipped rule.
    sed = next(c for c in COMMANDS if c[0] == "sed")
    expression = sed[1].replace("$FTDI_SERIAL", "A50285BI")
    proc = subprocess.run(["sed", expression, str(RULE_PATH)], capture_output=True, text=True,
                          timeout=30, check=True)
    rule = load_rule(proc.stdout)
    assert rule["ATTRS{serial}"].value == "A50285BI"
    assert PLACEHOLDER not in proc.stdout


def test_install_puts_the_unit_in_place_and_enables_it():
    source = str(UNIT_PATH.relative_to(REPO_ROOT))
    assert ["install", "-m", "0644", source, "/etc/systemd/system/" + UNIT_PATH.name] in COMMANDS
    assert commands_starting("systemctl", "daemon-reload")
    assert ["systemctl", "enable", "--now", UNIT_PATH.name] in COMMANDS


def test_install_creates_the_service_user_in_dialout():
    user = one("User")
    useradd = commands_starting("useradd")
    assert len(useradd) == 1 and useradd[0][-1] == user and "--system" in useradd[0]
    assert ["usermod", "-aG", "dialout", user] in COMMANDS
    assert one("Group") == user  # --user-group creates the group of the same name


def test_install_venv_provides_the_unit_exec_start():
    venvs = [c[-1] for c in commands_starting("python3", "-m", "venv")]
    assert len(venvs) == 1
    binary = Path(shlex.split(one("ExecStart"))[0])
    assert binary == Path(venvs[0]) / "bin" / "edge-run"
    assert any(c[0] == f"{venvs[0]}/bin/pip" and c[1] == "install" for c in COMMANDS)


def test_every_deployment_file_is_used_by_the_install_steps():
    text = " ".join(" ".join(c) for c in COMMANDS)
    for path in PI_DIR.iterdir():
        if path.suffix != ".md":
            assert str(path.relative_to(REPO_ROOT)) in text, path.name


def test_install_doc_names_one_unit():
    # A renamed unit must not leave stale status/journal/disable commands in the doc.
    names = {Path(w).name for c in COMMANDS for w in c if w.endswith(".service")}
    assert names == {UNIT_PATH.name}
