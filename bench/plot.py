"""Plots of bench/out/results.json for docs/benchmarks.md.

    python bench/plot.py bench/out/results.json docs/benchmarks

Writes throughput.png (events/s per core of each topology: Sluice, Kafka
Streams, the raw consumer) and latency.png (the distribution of pull- and
push-query latencies of the last run).
"""
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TOPOLOGIES = ["project", "window_count", "join", "table_agg"]
ENGINES = [("sluice", "Sluice"), ("kafka-streams", "Kafka Streams"), ("raw-consumer", "raw consumer")]


def throughput(results, out):
    runs = results.get("kafka") or []
    if not runs:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for i, (engine, label) in enumerate(ENGINES):
        values = []
        for t in TOPOLOGIES:
            r = next((x for x in runs if x["topology"] == t and x["engine"] == engine), None)
            values.append(r["events"] / statistics.median(r["cpu_s"]) / 1000 if r else 0)
        xs = [j + (i - 1) * width for j in range(len(TOPOLOGIES))]
        ax.bar(xs, values, width, label=label)
    ax.set_xticks(range(len(TOPOLOGIES)), TOPOLOGIES)
    ax.set_ylabel("thousand events per CPU-second")
    ax.set_yscale("log")
    ax.set_title("Streaming throughput per core on Kafka (median of runs)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=110)
    plt.close(fig)


def latency(results, out):
    lat = results.get("latency")
    if not lat or not lat["pull_ms"]:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    for key, label in [("pull_ms", "pull query (table)"), ("push_ms", "push query")]:
        samples = sorted(lat[key][-1])
        if not samples:
            continue
        n = len(samples)
        ax.plot(samples, [(i + 1) / n for i in range(n)], label=f"{label}, {n} samples")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("fraction of events seen")
    ax.set_title(f"End-to-end latency at {lat['rate']} events/s (last run)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
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
