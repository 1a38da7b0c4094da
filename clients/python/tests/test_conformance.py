"""The conformance fixtures every kit runs (``tests/conformance/`` in the repository): the
generator starts authd in a known state and hands out tokens with the verdict authd itself gives
each; this kit must give the same one. The Rust and Node kits run the same fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authd_verify import Verifier, VerifyError


def generator_binary(authd: Path) -> Path:
    """``AUTHD_CONFORMANCE_BIN``, else ``examples/conformance`` beside the authd binary."""
    given = os.environ.get("AUTHD_CONFORMANCE_BIN")
    path = Path(given).resolve() if given else authd.parent / "examples" / "conformance"
    if not path.exists():
        raise RuntimeError(
            f"the conformance generator is missing at {path}: build it with "
            "`cargo build --release --example conformance` in the repository root "
            "(or point AUTHD_CONFORMANCE_BIN at one)"
        )
    return path


@pytest.fixture(scope="module")
def fixtures(binary: Path) -> Iterator[dict[str, Any]]:
    generator = subprocess.Popen(
        [str(generator_binary(binary)), "--authd", str(binary)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert generator.stdout is not None
        line = generator.stdout.readline()
        if not line:
            raise RuntimeError(f"the generator exited ({generator.wait()}) before its fixtures")
        yield json.loads(line)
    finally:
        assert generator.stdin is not None
        generator.stdin.close()
        generator.wait(timeout=30)


def test_the_python_kit_gives_every_conformance_fixture_its_verdict(fixtures: dict[str, Any]) -> None:
    assert fixtures["version"] == 1
    assert len(fixtures["cases"]) >= 40, f"the fixture set shrank to {len(fixtures['cases'])}"
    assert time.time() < fixtures["valid_until"], "the fixtures expired before they were run"
    verifier = Verifier(
        fixtures["authd_url"],
        fixtures["service_key"],
        issuer=fixtures["issuer"],
        audience=fixtures["audience"],
        leeway=fixtures["leeway_secs"],
    ).start()
    wrong = []
    try:
        for case in fixtures["cases"]:
            try:
                claims = verifier.verify(case["token"])
                same = claims["sub"] == case.get("sub") and claims["sid"] == case.get("sid")
                got = "accept" if same else f"accept with other claims ({claims['sub']})"
            except VerifyError as e:
                got = e.reason
            if got != case["verdict"]:
                wrong.append(f"{case['name']}: expected {case['verdict']}, got {got} ({case['description']})")
    finally:
        verifier.close()
    assert wrong == [], f"{len(wrong)} of {len(fixtures['cases'])} cases wrong"
