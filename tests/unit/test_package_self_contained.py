"""Which platforms `tokendrop provider package` freezes: by default the build machine's own when
PyInstaller is there; `--self-contained` insists (and says why it cannot); `--no-self-contained` never."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokendrop_provider import freeze, package
from tokendrop_provider.install import terraform_platform

HOST = terraform_platform()
OTHER = next(p for p in package.PLATFORMS if p != HOST)
needs_freezable_host = pytest.mark.skipif(not freeze.can_freeze_for(HOST), reason=f"{HOST} is not frozen")


@needs_freezable_host
def test_default_freezes_the_host_platform_only() -> None:
    assert package.self_contained_platforms([HOST, OTHER], None) == (HOST,)
    assert package.self_contained_platforms([OTHER], None) == ()
    assert package.self_contained_platforms([HOST, OTHER], False) == ()
    assert package.self_contained_platforms([HOST], True) == (HOST,)


@needs_freezable_host
def test_without_pyinstaller_the_default_falls_back_and_the_option_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freeze, "pyinstaller_version", lambda: None)
    assert package.self_contained_platforms([HOST], None) == ()
    with pytest.raises(package.PackageError, match="--self-contained needs PyInstaller") as caught:
        package.self_contained_platforms([HOST], True)
    assert "requirements/build.txt" in str(caught.value.detail)


def test_self_contained_for_another_platform_is_refused() -> None:
    with pytest.raises(package.PackageError, match=rf"--self-contained builds for the platform of this machine "
                                                    rf"\({HOST}\) only"):
        package.self_contained_platforms([OTHER], True)


def test_self_contained_refuses_a_substitute_provider_source(tmp_path: Path) -> None:
    with pytest.raises(package.PackageError, match="made from the installed provider only"):
        package.build(tmp_path, ["linux_amd64"], self_contained=("linux_amd64",), provider_source=tmp_path,
                      verify=False)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_command_line_option(capsys: pytest.CaptureFixture[str]) -> None:
    from tokendrop_provider.cli import main

    with pytest.raises(SystemExit):
        main(["provider", "package", "--help"])
    text = capsys.readouterr().out
    assert "--self-contained" in text and "--no-self-contained" in text
