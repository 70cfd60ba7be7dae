"""pyproject.toml ships every package and data folder, and its metadata is complete."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PROJECT_EXTRAS = PYPROJECT["project"]["optional-dependencies"]


def _folder(package: str) -> Path:
    """The source folder of a dotted package name through ``package-dir``."""
    dirs = SETUPTOOLS["package-dir"]
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in dirs:
            return ROOT / dirs[prefix] / Path(*parts[cut:])
    raise AssertionError(f"{package} is under no package-dir root")


def test_every_source_and_data_folder_is_a_listed_package():
    """A folder setuptools would warn about ("Package would be ignored") or silently drop fails here."""
    listed = set(SETUPTOOLS["packages"])
    found = set()
    for root_name, folder in SETUPTOOLS["package-dir"].items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                relative = path.parent.relative_to(ROOT / folder)
                found.add(".".join([root_name, *relative.parts]))
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert {p for p in listed if not _folder(p).is_dir()} == set()


def test_package_data_globs_cover_every_data_file():
    data = SETUPTOOLS["package-data"]
    for package in SETUPTOOLS["packages"]:
        folder = _folder(package)
        files = {p for p in folder.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")}
        covered = {p for pattern in data.get(package, []) for p in folder.glob(pattern)}
        assert files <= covered, f"{package}: not shipped: {sorted(f.name for f in files - covered)}"


def test_metadata_license_urls_classifiers():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["license-files"] == ["LICENSE"]
    assert {"Homepage", "Repository", "Documentation", "Issues"} <= set(project["urls"])
    assert any(c.startswith("Programming Language :: Python :: 3.") for c in project["classifiers"])
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639: the SPDX field only
    assert project["keywords"]


def test_llm_pins_admit_todays_releases():
    """transformers 5.24 and any trl 1.x are allowed (issue 17: an upper bound only at the next major)."""
    from packaging.requirements import Requirement

    llm = {r.name: r for r in map(Requirement, PROJECT_EXTRAS["llm"])}
    assert "5.24.0" in llm["transformers"].specifier and "6.0.0" not in llm["transformers"].specifier
    assert "1.99.0" in llm["trl"].specifier and "2.0.0" not in llm["trl"].specifier
    assert "4.7.0" in llm["datasets"].specifier and "4.6.0" not in llm["datasets"].specifier  # TRL's floor
    assert "1.10.1" in llm["accelerate"].specifier and "1.10.0" not in llm["accelerate"].specifier
    assert "aligngym[llm,ray,wandb,sbx]" in PROJECT_EXTRAS["all"]
