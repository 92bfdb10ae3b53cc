"""Plots of bench/out/results.json for docs/benchmarks.md.

    python bench/plot.py bench/out/results.json docs/benchmarks

Writes throughput.png (steady-state events/s, wall-clock and per core, of
each topology and record-cache setting: Sluice, Kafka Streams, the raw
consumer) and latency.png (the distribution of push-query latencies and
pull-query freshness of the last run of each latency scenario).
"""
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOPOLOGIES = ["project", "window_count", "join", "table_agg"]
ENGINES = [("sluice", "Sluice"), ("kafka-streams", "Kafka Streams")]


def rates(row):
    """(events/s, events per CPU-s) of a row, as the report computes them."""
    if row["engine"] == "raw-consumer":
        wall = statistics.median(row["total_s"])
        cpu = statistics.median(row["cpu_s"])
        return row["events"] / wall, row["events"] / cpu
    steady = [s for s in row["steady"] if s]
    if not steady:
        return None
    return (
        statistics.median([s["events"] / s["wall_s"] for s in steady]),
        statistics.median([s["events"] / s["cpu_s"] for s in steady]),
    )


def cache_label(settings):
    b = settings["cache_bytes"]
    return "cache off" if b == 0 else f"cache {b / 2**20:g} MiB"


def throughput(results, out):
    part = results.get("kafka")
    if not part or not part["data"]:
        return
    rows = part["data"]
    settings = []
    for r in rows:
        if r["settings"] and r["settings"] not in settings:
            settings.append(r["settings"])
    groups = [(t, s) for t in TOPOLOGIES for s in settings]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / (len(ENGINES) + 1)
    for ax, which, ylabel in [
        (axes[0], 0, "thousand events/s (wall-clock)"),
        (axes[1], 1, "thousand events per CPU-second"),
    ]:
        for i, (engine, label) in enumerate(ENGINES + [("raw-consumer", "raw consumer")]):
            values = []
            for t, s in groups:
                want = None if engine == "raw-consumer" else s
                r = next(
                    (x for x in rows if x["topology"] == t and x["engine"] == engine and x["settings"] == want),
                    None,
                )
                v = rates(r) if r else None
                values.append(v[which] / 1000 if v else 0)
            xs = [j + (i - 1) * width for j in range(len(groups))]
            ax.bar(xs, values, width, label=label)
        ax.set_xticks(
            range(len(groups)),
            [f"{t.replace('_', ' ')}\n{cache_label(s)}" for t, s in groups],
            fontsize=7,
        )
        ax.set_ylabel(ylabel)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle(f"Steady-state throughput on Kafka (median of runs), measured {part['measured']['when']}")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=110)
    plt.close(fig)


def cdf(ax, dist, label):
    """A distribution's CDF from its histogram (bucket i: below 0.1 ms * 10^((i+1)/20))."""
    total = dist["n"] + dist["missing"]
    if total == 0:
        return
    xs, ys, seen = [], [], 0
    for i, count in enumerate(dist["histogram"]):
        seen += count
        if count:
            xs.append(0.1 * 10 ** ((i + 1) / 20))
            ys.append(seen / total)
    ax.step(xs, ys, where="post", label=f"{label} ({dist['n']} of {total})")


def latency(results, out):
    part = results.get("latency")
    if not part or not part["data"]["scenarios"]:
        return
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for sc in part["data"]["scenarios"]:
        if not sc["runs"]:
            continue
        run = sc["runs"][-1]
        name = f"{sc['rate']}/s, {'shared' if sc['shared'] else 'alone'}"
        cdf(ax, run["push"], f"push {name}")
        if run.get("pull"):
            cdf(ax, run["pull"], f"pull {name}")
    ax.set_xscale("log")
    ax.set_xlabel("ms from produce (log)")
    ax.set_ylabel("fraction of events seen")
    ax.set_title(f"End-to-end latency (last run of each scenario), measured {part['measured']['when']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "latency.png"), dpi=110)
    plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS.json OUT_DIR")
    with open(sys.argv[1]) as f:
        results = json.load(f)
    os.makedirs(sys.argv[2], exist_ok=True)
    throughput(results, sys.argv[2])
    latency(results, sys.argv[2])


if __name__ == "__main__":
    main()
