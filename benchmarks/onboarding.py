"""Mass onboarding at AWS's default quotas: 10,000 devices powering up at once against the embedded IoT enforcing AWS's
default quota of every operation the flow calls and the device-side limits (CONNECTs, auto-registrations), all
multiplied by one factor, with devices reconnecting as the AWS IoT Device SDK v2 does (its delays divided by the same
factor) until they are connected or refused. The same fleet runs three ways:

- `onboarding_aws_defaults`: the stack's wiring (rule -> queue -> mapping -> paced handler) with the decision table;
- `onboarding_no_decision_table`: the same wiring, every duplicate decided again (reads the certificate);
- `onboarding_naive`: rule -> Lambda, no queue, no pacing, no decision table.

The two comparisons stop when the first run took 1.25 x to onboard the fleet: what they have done by then, and what
they have left, is the comparison. Writes a PNG of devices provisioned over time for all three, against the quota.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from jitr.pacing import AWS_DEFAULT_TPS
from jitr_tools.rehearsing.simulate import Options, Result, simulate

DEVICES = 10_000
FACTOR = (
    2.5  # every AWS default quota x 2.5 (RegisterThing 25/s) and reconnect delays / 2.5: one Python process keeps up
)
INVALID_FRACTION = 0.05
SEED = 2026
TIMEOUT_S = 1_800.0  # the first run's limit; it needs about 1.1 x DEVICES / RegisterThing quota
COMPARISON_CAP = 1.25  # the comparisons stop at this multiple of the first run's time to onboard the fleet

KEYS = (
    "devices",
    "provisioned",
    "rejected",
    "refused_at_connect",
    "lost",
    "unfinished",
    "queue_drained",
    "connects",
    "connects_throttled",
    "events",
    "duplicates_absorbed",
    "max_events_per_device",
    "calls_by_operation",
    "inner_calls_by_operation",
    "throttles_by_operation",
    "iot_calls",
    "iot_calls_per_provisioned",
    "throttled_share",
    "dead_letters",
    "dropped",
    "drain_s",
    "ideal_drain_s",
    "throughput_per_s",
    "throughput_ratio",
    "quota",
    "time_factor",
    "concurrency",
    "wiring",
    "absorb_duplicates",
)


def _keys(result: Result) -> dict[str, Any]:
    data = result.to_dict()
    figures = {key: data[key] for key in KEYS}
    figures["drain_ratio"] = round(result.drain_s / result.ideal_drain_s, 3) if result.ideal_drain_s else None
    return figures


def run(plot: Path, devices: int = DEVICES, factor: float = FACTOR) -> dict[str, dict[str, Any]]:
    base = Options(
        devices=devices,
        quota=AWS_DEFAULT_TPS["RegisterThing"] * factor,
        aws_quotas=True,
        invalid_fraction=INVALID_FRACTION,
        seed=SEED,
        timeout_s=TIMEOUT_S,
    )
    jitr = simulate(base)
    cap = round(jitr.drain_s * COMPARISON_CAP, 1)
    no_table = simulate(dataclasses.replace(base, absorb_duplicates=False, timeout_s=cap))
    naive = simulate(dataclasses.replace(base, wiring="direct", absorb_duplicates=False, timeout_s=cap))
    _plot(plot, [(jitr, "jitr"), (no_table, "jitr without the decision table"), (naive, "naive: rule -> Lambda")])
    return {
        "onboarding_aws_defaults": _keys(jitr),
        "onboarding_no_decision_table": _keys(no_table),
        "onboarding_naive": _keys(naive),
    }


def _plot(path: Path, runs: list[tuple[Result, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = runs[0][0]
    figure, axes = plt.subplots(figsize=(8.5, 5), dpi=110)
    for result, label in runs:
        times = [t for t, _ in result.timeline]
        counts = [n for _, n in result.timeline]
        state = "" if result.queue_drained else f", {result.unfinished} unfinished at {result.drain_s:.0f} s"
        axes.plot(
            times,
            counts,
            label=f"{label}: {result.provisioned} provisioned, {result.events} events,"
            f" {result.iot_calls_per_provisioned:.1f} AWS IoT calls per device,"
            f" {sum(result.throttles_by_operation.values())} throttled, {result.lost} lost{state}",
        )
    end = max(max(r.timeline[-1][0] for r, _ in runs), 1.0)
    axes.plot([0, end], [0, first.quota * end], linestyle="--", color="grey", label=f"quota {first.quota:g}/s")
    axes.set_ylim(0, max(r.provisioned for r, _ in runs) * 1.1 + 1)
    axes.set_xlabel("seconds since the fleet powered up")
    axes.set_ylabel("devices provisioned")
    axes.set_title(
        f"{first.devices:,} devices at once, AWS's default quotas x {first.time_factor:g}"
        f" (RegisterThing {first.quota:g}/s), SDK reconnects"
    )
    axes.legend(loc="upper left", fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
