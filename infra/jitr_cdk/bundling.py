"""The Lambda asset, built without Docker: the domain package, the handler, and requirements.txt installed by pip for
the function's platform (`--platform manylinux2014_<arch> --only-binary=:all: --python-version X.Y`).

The asset's hash covers exactly what is shipped: the sources, the pins, the platform and the wheels the dependencies
are installed from (the wheel house holds exactly the current pins' wheels). When CDK skips bundling (`cdk bootstrap`,
`cdk ls`, or a stack not selected), the staged folder is the bare source tree, and it gets a hash of its own
("unbundled"), so it can never be published under the key of a bundled asset and then served from S3's cache in its
place. A bundle missing a pinned distribution stops the synth.

Nothing else goes in: no command line tool, no embedded IoT, no tests, no moto, no CDK. `make install` fills a wheel
house for the deployed platform, so `cdk synth` after it needs no network. Run `python -m jitr_cdk.bundling build OUT`
to build an asset by hand (the end-to-end test builds one for this machine's platform the same way).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGES = ("jitr", "jitr_handlers")  # under lambdas/
REQUIREMENTS = ("requirements.txt", "constraints.txt")
HANDLER = "jitr_handlers.registration.handler"
CHECKOUT = Path(__file__).resolve().parents[2]  # the repository, when this module is read from a checkout
PINS = Path(__file__).resolve().parent / "pins"  # the installed package's copies of REQUIREMENTS


@dataclass(frozen=True)
class Sources:
    """Where an asset's parts are: each package's folder, the pin files, and the folder of the wheel houses."""

    packages: dict[str, Path] = field(hash=False)
    pins: dict[str, Path] = field(hash=False)
    cache: Path

    @classmethod
    def checkout(cls, root: Path) -> Sources:
        return cls(
            {package: root / "lambdas" / package for package in PACKAGES},
            {name: root / name for name in REQUIREMENTS},
            root / "build",
        )

    @classmethod
    def installed(cls) -> Sources:
        import importlib.util
        import os

        packages = {}
        for package in PACKAGES:
            spec = importlib.util.find_spec(package)  # installed beside this package, by the same wheel
            if spec is None or spec.origin is None:
                raise BundleError(f"the package {package!r} is not installed: reinstall jitr")
            packages[package] = Path(spec.origin).parent
        cache = Path(os.environ.get("JITR_CACHE") or Path.home() / ".cache" / "jitr")
        return cls(packages, {name: PINS / name for name in REQUIREMENTS}, cache)

    @classmethod
    def here(cls) -> Sources:
        """This checkout's sources when this module is read from one, else the installed package's."""
        if all((CHECKOUT / name).is_file() for name in REQUIREMENTS) and (CHECKOUT / "lambdas" / "jitr").is_dir():
            return cls.checkout(CHECKOUT)
        return cls.installed()

    def files(self) -> Iterator[tuple[str, Path]]:
        """Every file the hash covers, by the name it has in a checkout (so an installed jitr hashes the same)."""
        for package in PACKAGES:
            folder = self.packages[package]
            for path in sorted(folder.rglob("*.py")):
                yield f"lambdas/{package}/{path.relative_to(folder).as_posix()}", path
        for name in REQUIREMENTS:
            yield name, self.pins[name]


@dataclass(frozen=True)
class Target:
    """A Lambda platform: CPU architecture (Lambda's names) and Python version."""

    architecture: str  # "arm64" | "x86_64"
    python_version: str  # "3.14"

    @property
    def pip_platform(self) -> str:
        return {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}[self.architecture]

    @property
    def name(self) -> str:
        return f"{self.architecture}-py{self.python_version}"

    @classmethod
    def this_machine(cls) -> Target:
        machine = platform.machine().lower()
        architecture = "arm64" if machine in ("aarch64", "arm64") else "x86_64"
        return cls(architecture, f"{sys.version_info.major}.{sys.version_info.minor}")


# The deployed function's platform (jitr_cdk.handler's RUNTIME and ARCHITECTURE say the same; a test holds them
# together).
FUNCTION_TARGET = Target("arm64", "3.14")


class BundleError(RuntimeError):
    """The asset would ship without what the handler needs."""


def asset_hash(target: Target, sources: Sources | None = None, *, bundled: bool = True) -> str:
    """Changes exactly when the asset would: any source, pin or dependency wheel, or the target platform. `bundled`
    False: the hash of the bare source tree CDK stages when it skips bundling, never equal to a bundled one."""
    sources = sources or Sources.here()
    digest = hashlib.sha256(target.name.encode())
    for name, path in sources.files():
        digest.update(name.encode())
        digest.update(path.read_bytes())
    if not bundled:
        return "unbundled-" + digest.hexdigest()
    if not _house_is_current(target, sources):
        raise BundleError(
            f"the wheel house for {target.name} does not hold the current pins' wheels: run `make install` (or"
            " `python -m jitr_cdk.bundling prefetch`) before synthesizing with bundling"
        )
    for wheel in _wheels(target, sources):
        digest.update(wheel.name.encode())
        digest.update(hashlib.sha256(wheel.read_bytes()).digest())
    return digest.hexdigest()


def _wheels(target: Target, sources: Sources) -> list[Path]:
    return sorted(wheelhouse(target, sources).glob("*.whl"))


def pinned_distributions(sources: Sources | None = None) -> dict[str, str]:
    """Every distribution requirements.txt pins, by normalized name: what a bundle must contain."""
    sources = sources or Sources.here()
    pins: dict[str, str] = {}
    for line in sources.pins["requirements.txt"].read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" not in requirement:
            continue
        name, version = requirement.split("==", 1)
        pins[_normalize(name.split("[", 1)[0])] = version.strip()
    return pins


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(".", "_")


def check_bundle(output: Path, sources: Sources | None = None) -> None:
    """Raise `BundleError` unless `output` holds the handler, the domain package and every pinned distribution at its
    pinned version."""
    missing = [package for package in PACKAGES if not (output / package / "__init__.py").is_file()]
    installed: dict[str, str] = {}
    for info in output.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        installed[_normalize(name)] = version
    for name, version in pinned_distributions(sources).items():
        if installed.get(name) != version:
            missing.append(f"{name}=={version}" + (f" (found {installed[name]})" if name in installed else ""))
    if missing:
        raise BundleError(f"the Lambda asset in {output} lacks {', '.join(missing)}; refusing to ship it")


def wheelhouse(target: Target, sources: Sources | None = None) -> Path:
    return (sources or Sources.here()).cache / "wheels" / target.name


def _pip_platform_args(target: Target) -> list[str]:
    return [
        "--platform",
        target.pip_platform,
        "--only-binary=:all:",
        "--python-version",
        target.python_version,
        "--implementation",
        "cp",
    ]


def _requirements_args(sources: Sources) -> list[str]:
    return ["-r", str(sources.pins["requirements.txt"]), "-c", str(sources.pins["constraints.txt"])]


def _stamp(target: Target, sources: Sources) -> str:
    digest = hashlib.sha256(target.name.encode())
    for name in REQUIREMENTS:
        digest.update(sources.pins[name].read_bytes())
    return digest.hexdigest()


def _house_is_current(target: Target, sources: Sources) -> bool:
    """The wheel house holds every wheel of the current pins for `target`."""
    stamp = wheelhouse(target, sources) / ".complete"
    return stamp.is_file() and stamp.read_text() == _stamp(target, sources)


def prefetch(target: Target, sources: Sources | None = None) -> Path:
    """Download every wheel the asset needs into the wheel house (network); a no-op when the pins have not changed."""
    sources = sources or Sources.here()
    house = wheelhouse(target, sources)
    if _house_is_current(target, sources):
        return house
    if house.exists():
        shutil.rmtree(house)  # the house holds exactly the current pins' wheels: the asset hash covers them
    house.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", str(house)]
    subprocess.run([*pip, *_pip_platform_args(target), *_requirements_args(sources)], check=True)
    (house / ".complete").write_text(_stamp(target, sources))
    return house


def bundle(output: Path, target: Target, sources: Sources | None = None) -> Path:
    """Write the asset's files into `output`. Uses the wheel house when it is complete (offline), else the index."""
    sources = sources or Sources.here()
    output.mkdir(parents=True, exist_ok=True)
    house = wheelhouse(target, sources)
    source = ["--no-index", "--find-links", str(house)] if _house_is_current(target, sources) else []
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",  # byte code would be for this interpreter, not the function's
            "--target",
            str(output),
            *source,
            *_pip_platform_args(target),
            *_requirements_args(sources),
        ],
        check=True,
    )
    for package in PACKAGES:
        shutil.copytree(
            sources.packages[package],
            output / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
    check_bundle(output, sources)
    return output


def size_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def lambda_code(scope: Any, target: Target, sources: Sources | None = None) -> Any:
    """The function's `Code`: bundled locally by `bundle`, hashed by `asset_hash` (Docker is never used). When CDK
    will skip bundling for `scope`'s stack, the staged source tree gets the "unbundled" hash."""
    import aws_cdk as cdk
    import jsii
    from aws_cdk import aws_lambda

    sources = sources or Sources.here()
    bundled = cdk.Stack.of(scope).bundling_required
    if bundled:
        prefetch(target, sources)  # a no-op when the wheel house holds the current pins (make install filled it)

    @jsii.implements(cdk.ILocalBundling)
    class _LocalBundling:
        def try_bundle(self, output_dir: str, options: Any = None, **_: Any) -> bool:
            bundle(Path(output_dir), target, sources)
            return True

    return aws_lambda.Code.from_asset(
        str(sources.packages[HANDLER.split(".", 1)[0]]),  # staged as is only when bundling is skipped
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=asset_hash(target, sources, bundled=bundled),
        bundling=cdk.BundlingOptions(
            image=cdk.DockerImage.from_registry("unused-local-bundling-only"),
            local=_LocalBundling(),
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jitr_cdk.bundling", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("prefetch", help="download the wheels of the deployed platform (or --architecture/--python)")
    build = sub.add_parser("build", help="build an asset folder")
    build.add_argument("output", type=Path)
    for command in (fetch, build):
        command.add_argument("--architecture", choices=("arm64", "x86_64"))
        command.add_argument("--python", dest="python_version")
        command.add_argument("--this-machine", action="store_true", help="target this machine's platform")
    args = parser.parse_args(argv)
    target = Target.this_machine() if args.this_machine else FUNCTION_TARGET
    target = Target(args.architecture or target.architecture, args.python_version or target.python_version)
    if args.command == "prefetch":
        print(f"wheels for {target.name}: {prefetch(target)}")
    else:
        out = bundle(args.output, target)
        print(f"asset for {target.name}: {out} ({size_bytes(out) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
