"""Mass onboarding: a fleet powering up at once against the embedded IoT enforcing a scaled RegisterThing quota, wired
as the stack wires it (rule -> queue -> mapping -> paced handler), and the naive wiring (rule -> Lambda, no queue, no
pacing) on the same fleet size for comparison. Writes a PNG of devices provisioned over time against the quota."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jitr_tools.simulate import Options, Result, simulate

DEVICES = 10_000
NAIVE_DEVICES = 2_000  # the naive wiring burns CPU on throttled calls; 10,000 would take this run past ten minutes
QUOTA = 50.0  # RegisterThing per second: AWS's default of 10, scaled x5 so the run stays short on one machine
RECONNECTS = 2
BACKOFF_S = 1.0  # first reconnect after about a second, then two: devices retry while pending, so duplicates happen
INVALID_FRACTION = 0.05
SEED = 2026


# The figures written to bench-results.json: the result's own dictionary (throughput_ratio rounded there), minus the
# per-device lists and the timeline, which the plot shows.
KEYS = (
    "devices",
    "provisioned",
    "rejected",
    "refused_at_connect",
    "lost",
    "register_calls",
    "throttles",
    "repeat_provisions",
    "events",
    "duplicates_absorbed",
    "dead_letters",
    "dropped",
    "drain_s",
    "throughput_per_s",
    "throughput_ratio",
    "quota",
    "concurrency",
)


def _keys(result: Result) -> dict[str, Any]:
    data = result.to_dict()
    return {key: data[key] for key in KEYS}


def run(
    plot: Path, devices: int = DEVICES, naive_devices: int = NAIVE_DEVICES
) -> tuple[dict[str, Any], dict[str, Any]]:
    common = {
        "quota": QUOTA,
        "reconnects": RECONNECTS,
        "backoff_s": BACKOFF_S,
        "invalid_fraction": INVALID_FRACTION,
        "seed": SEED,
        "drain_timeout_s": 600.0,
    }
    queued = simulate(Options(devices=devices, **common, wiring="queue"))  # type: ignore[arg-type]
    naive = simulate(Options(devices=naive_devices, **common, wiring="direct"))  # type: ignore[arg-type]
    _plot(plot, queued, naive)
    return _keys(queued), _keys(naive)


def _plot(path: Path, queued: Result, naive: Result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    for result, label in ((queued, "jitr: rule -> queue -> paced handler"), (naive, "naive: rule -> Lambda")):
        times = [t for t, _ in result.timeline]
        counts = [n for _, n in result.timeline]
        axes.plot(
            times,
            counts,
            label=f"{label}: {result.devices} devices, {result.provisioned} provisioned,"
            f" {result.throttles} throttled calls, {result.lost} lost",
        )
    end = max(queued.timeline[-1][0], naive.timeline[-1][0], 1.0)
    axes.plot([0, end], [0, queued.quota * end], linestyle="--", color="grey", label=f"quota {queued.quota:g}/s")
    axes.set_ylim(0, max(queued.provisioned, naive.provisioned) * 1.1 + 1)
    axes.set_xlabel("seconds since the fleet powered up")
    axes.set_ylabel("devices provisioned")
    axes.set_title(f"Fleets connecting at once, RegisterThing quota {queued.quota:g}/s")
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
