"""The Lambda asset's hash covers exactly what is shipped, and an asset without its dependencies is never produced or
published under a bundled asset's hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jitr_cdk import bundling
from jitr_cdk.bundling import BundleError, Sources, Target, asset_hash, check_bundle
from tests.infra.support import synthesize
from tests.support import REPO

TARGET = Target("arm64", "3.14")


@pytest.fixture
def root(tmp_path: Path) -> Sources:
    """A checkout with the sources, the pins and a wheel house holding one wheel per pin (fake bytes)."""
    for package in bundling.PACKAGES:
        shutil.copytree(REPO / "lambdas" / package, tmp_path / "lambdas" / package)
    for name in bundling.REQUIREMENTS:
        shutil.copy(REPO / name, tmp_path / name)
    sources = Sources.checkout(tmp_path)
    _fill_house(sources)
    return sources


def _fill_house(root: Sources) -> None:
    """What `prefetch` leaves: the pins' wheels and the stamp of the pins they were fetched for."""
    house = bundling.wheelhouse(TARGET, root)
    if house.exists():
        shutil.rmtree(house)
    house.mkdir(parents=True)
    for name, version in bundling.pinned_distributions(root).items():
        (house / f"{name}-{version}-py3-none-any.whl").write_bytes(f"{name} {version}".encode())
    (house / ".complete").write_text(bundling._stamp(TARGET, root))


def _repin(root: Sources, name: str, version: str) -> None:
    lines = root.pins["requirements.txt"].read_text().splitlines()
    lines = [f"{line.split('==')[0]}=={version}" if line.startswith(name + "==") else line for line in lines]
    root.pins["requirements.txt"].write_text("\n".join(lines) + "\n")


def test_changing_a_dependency_pin_changes_the_hash(root: Sources) -> None:
    before = asset_hash(TARGET, root)
    _repin(root, "pydantic", "2.14.4")
    with pytest.raises(BundleError, match="make install"):  # the house still holds the old pin's wheel
        asset_hash(TARGET, root)
    _fill_house(root)  # what prefetch does for the new pin
    assert asset_hash(TARGET, root) != before


def test_the_hash_follows_the_wheels_bytes_the_sources_and_the_platform(root: Sources) -> None:
    before = asset_hash(TARGET, root)
    wheel = next(bundling.wheelhouse(TARGET, root).glob("pydantic-*.whl"))
    wheel.write_bytes(b"a rebuilt wheel, same name")
    after_wheel = asset_hash(TARGET, root)
    assert after_wheel != before
    (root.packages["jitr"] / "outcomes.py").write_text("# changed\n", encoding="utf-8")
    assert asset_hash(TARGET, root) != after_wheel
    assert asset_hash(TARGET, root) == asset_hash(TARGET, root)  # and nothing else moves it


def test_an_unbundled_tree_never_gets_a_bundled_hash(root: Sources) -> None:
    bundled, unbundled = asset_hash(TARGET, root), asset_hash(TARGET, root, bundled=False)
    assert unbundled != bundled
    assert unbundled.startswith("unbundled-")


def test_a_bundle_without_its_dependencies_is_refused(tmp_path: Path) -> None:
    asset = tmp_path / "asset"
    for package in bundling.PACKAGES:
        shutil.copytree(REPO / "lambdas" / package, asset / package)
    with pytest.raises(BundleError, match="aws_lambda_powertools==") as refused:
        check_bundle(asset)
    assert "refusing to ship it" in str(refused.value)
    for name, version in bundling.pinned_distributions().items():
        (asset / f"{name}-{version}.dist-info").mkdir()
    check_bundle(asset)  # complete: accepted
    (asset / "pydantic-2.14.3.dist-info").rename(asset / "pydantic-2.0.0.dist-info")
    with pytest.raises(BundleError, match=r"pydantic==2\.14\.3 \(found 2\.0\.0\)"):
        check_bundle(asset)


def _fake_bundle(output: Path, target: Target, root: Sources | None = None) -> Path:
    """A complete bundle without pip (the real one is built by the CDK CLI test): sources and the pins' dist-info."""
    for package in bundling.PACKAGES:
        shutil.copytree(REPO / "lambdas" / package, output / package, dirs_exist_ok=True)
    for name, version in bundling.pinned_distributions(root).items():
        (output / f"{name}-{version}.dist-info").mkdir(parents=True, exist_ok=True)
    check_bundle(output, root)
    return output


def _code_key(synthesized_json: dict[str, object]) -> str:
    resources = synthesized_json["Resources"]
    assert isinstance(resources, dict)
    functions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    (function,) = [f for f in functions if f["Properties"]["Handler"] == bundling.HANDLER]
    return str(function["Properties"]["Code"]["S3Key"])


def test_a_synth_that_skips_bundling_never_stages_under_the_bundled_assets_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundling.prefetch(bundling.FUNCTION_TARGET)  # what `make install` did; a no-op when the wheel house is current
    skipped = synthesize({}, tmp_path / "skipped")  # as `cdk bootstrap` or `cdk ls` synthesize: no bundling
    monkeypatch.setattr(bundling, "bundle", _fake_bundle)
    bundled = synthesize({}, tmp_path / "bundled", **{"aws:cdk:bundling-stacks": ["**"]})
    skipped_key, bundled_key = _code_key(skipped.json), _code_key(bundled.json)
    assert skipped_key != bundled_key
    assert not list((tmp_path / "skipped").glob(f"asset.{skipped_key.removesuffix('.zip')}/*.dist-info"))
    (bundled_asset,) = (tmp_path / "bundled").glob(f"asset.{bundled_key.removesuffix('.zip')}")
    assert (bundled_asset / "pydantic-2.14.3.dist-info").is_dir()


def test_an_installed_jitr_gives_the_asset_hash_of_the_checkout(root: Sources, tmp_path: Path) -> None:
    site, pins = tmp_path / "site-packages", tmp_path / "pins"
    for package in bundling.PACKAGES:
        shutil.copytree(root.packages[package], site / package)
    pins.mkdir()
    for name in bundling.REQUIREMENTS:
        shutil.copy(root.pins[name], pins / name)
    installed = Sources(
        {p: site / p for p in bundling.PACKAGES}, {n: pins / n for n in bundling.REQUIREMENTS}, root.cache
    )
    assert asset_hash(TARGET, installed) == asset_hash(TARGET, root)
    (site / "jitr" / "outcomes.py").write_text("# changed\n", encoding="utf-8")
    assert asset_hash(TARGET, installed) != asset_hash(TARGET, root)


def test_the_package_carries_this_checkouts_pins() -> None:
    for name in bundling.REQUIREMENTS:
        assert (bundling.PINS / name).read_bytes() == (REPO / name).read_bytes()
    assert Sources.here() == Sources.checkout(REPO)
