"""Firmware builds and C test runs, driven through firmware/Makefile.

Each test runs one make target: the host unit tests, the ASan + UBSan run, the libFuzzer
run (fixed count, fixed seed) and both Cortex-M cross builds, then checks what it produced.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
BUILD = FIRMWARE / "build"
SPEC = REPO / "docs" / "protocol.md"
FLASH = range(0x0800_0000, 0x0810_0000)
SRAM = range(0x2000_0000, 0x2002_0001)

pytestmark = pytest.mark.timeout(600)


def make(target: str, *tools: str, **variables: str) -> str:
    """Run one make target; return its output, failing the test with it on error."""
    for tool in ("make", *tools):
        require_tool(tool)
    command = ["make", "-C", str(FIRMWARE), target, f"PYTHON={sys.executable}"]
    command += [f"{k}={v}" for k, v in variables.items()]
    result = subprocess.run(command, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def require_host_compiler() -> str:
    """The Makefile's host compiler: cc when present, else clang."""
    return "cc" if shutil.which("cc") else "clang"


def suite_summary(output: str) -> tuple[int, int, int]:
    match = re.search(r"(\d+) suites, (\d+) checks, (\d+) failures", output)
    assert match, output[-2000:]
    suites, checks, failures = (int(g) for g in match.groups())
    return suites, checks, failures


def test_host_unit_tests_pass() -> None:
    output = make("host-test", require_host_compiler())
    suites, checks, failures = suite_summary(output)
    assert failures == 0 and suites >= 23 and checks > 1000
    assert "FAILED" not in output


def test_c_tests_use_every_golden_vector_of_the_spec() -> None:
    make("host-test", require_host_compiler())
    header = (BUILD / "gen" / "golden_vectors.h").read_text()
    names = re.findall(r"^name: (\S+)$", SPEC.read_text(), flags=re.MULTILINE)
    assert len(names) >= 15
    missing = [n for n in names if f'"{n}"' not in header]
    assert not missing


def test_sanitizer_run_passes() -> None:
    output = make("sanitize", require_host_compiler())
    assert (
        "-fsanitize=address,undefined -fno-sanitize-recover=all" in output
        or (BUILD / "asan" / "run_tests").is_file()
    )
    _, _, failures = suite_summary(output)
    assert failures == 0


def test_fuzz_run_completes_without_findings() -> None:
    output = make("fuzz", "clang", FUZZ_RUNS="100000")
    assert re.search(r"^Done 100000 runs", output, flags=re.MULTILINE), output[-2000:]
    assert not list((BUILD / "fuzz").glob("crash-*"))
    seeds = list((BUILD / "fuzz" / "seeds").glob("*.bin"))
    assert len(seeds) >= 15


def _check_image(elf: Path) -> None:
    binary = elf.with_suffix(".bin")
    if binary.exists():
        image = binary.read_bytes()
    else:
        objcopy = require_tool("arm-none-eabi-objcopy")
        image = subprocess.run(
            [objcopy, "-O", "binary", str(elf), "/dev/stdout"], capture_output=True, check=True
        ).stdout
    initial_sp, reset = struct.unpack_from("<II", image)
    assert initial_sp in SRAM and initial_sp % 8 == 0
    assert reset in FLASH and reset & 1, "reset vector must be a Thumb address in flash"


def _footprint(output: str, elf: Path) -> tuple[int, int, int]:
    name = re.escape(str(elf.relative_to(FIRMWARE)))
    row = re.search(rf"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\w+\s+\S*{name}$", output, re.MULTILINE)
    assert row, output[-2000:]
    text, data, bss = (int(g) for g in row.groups())
    return text, data, bss


def _allocator_symbols(elf: Path) -> list[str]:
    nm = require_tool("arm-none-eabi-nm")
    symbols = subprocess.run([nm, str(elf)], capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in symbols.splitlines() if line.strip()}
    return sorted(names & {"malloc", "free", "calloc", "realloc", "_sbrk", "_malloc_r"})


def test_stm32_cross_build_prints_footprint() -> None:
    output = make("stm32", "arm-none-eabi-gcc", "arm-none-eabi-size")
    for variant in ("stm32", "stm32-ble"):
        elf = BUILD / variant / "firmware.elf"
        _check_image(elf)
        text, data, bss = _footprint(output, elf)
        # Budget of the STM32F405RG: 1 MiB flash, 128 KiB SRAM.
        assert text + data < 1024 * 1024 and data + bss < 128 * 1024
        assert not _allocator_symbols(elf), "the firmware must not use dynamic allocation"
        print(f"\n{variant}: text={text} data={data} bss={bss}")


def test_qemu_cross_builds() -> None:
    make("qemu", "arm-none-eabi-gcc", "arm-none-eabi-size")
    objcopy = require_tool("arm-none-eabi-objcopy")
    for variant in ("qemu", "qemu-ble", "qemu-ble-3000"):
        elf = BUILD / variant / "firmware.elf"
        image = elf.with_suffix(".bin")
        subprocess.run([objcopy, "-O", "binary", str(elf), str(image)], check=True)
        _check_image(elf)
        assert not _allocator_symbols(elf)
