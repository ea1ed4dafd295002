#!/usr/bin/env python3
"""Turns the JSON summaries of benches/compare/run.sh into the comparison table.

    python3 table.py OUT_DIR [--benchmarks BENCHMARKS.md]

OUT_DIR holds meta.json (written by run.sh) and, per row and round,
ROW/repN/{low,sweep,idle}.json (hubbub-load --json; sweep and idle only in the first `reps`
rounds, low in all `low_reps`). The table goes to OUT_DIR/table.md;
with --benchmarks, the part of that file between <!-- compare:begin --> and
<!-- compare:end --> is replaced by it (the section is appended when the markers are absent).

Per repetition:
  highest    the deliveries/s of the last step that held (loss < 0.1 %, p99 < 1 s, publisher
             on schedule) before the first that did not, over the low steps then the sweep;
             "≥" when that step was generator-bound (generator ≥ 90 % of its core) or the
             sweep ran out of rates
  p99 @50k   per-delivery p99 and last-subscriber p99 of the step at 50,000 deliveries/s
  CPU        server CPU µs per delivery of the step at 10,000 deliveries/s (1 msg/s to 10,000
             subscribers): every server process of the row (nodes and Redis) over the
             measured window
  idle       server VmRSS growth per idle connection (the node holding them)
Each cell is the median over the rounds that produced a value.
"""

import json
import os
import statistics
import sys

BEGIN = "<!-- compare:begin -->"
END = "<!-- compare:end -->"


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ms(us):
    if us is None:
        return "–"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        v = us / 1000
        return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"
    return f"{us / 1e6:.2f} s"


def rate(d):
    if d is None:
        return "–"
    if d >= 995_000:
        return f"{d / 1e6:.2f} M"
    return f"{d / 1e3:.0f} k"


def generator_bound(step):
    cpu = step.get("generator_cpu") or {}
    return cpu.get("percent", 0) >= 90 * max(1, step.get("generator_cores", 1))


def why_not(step):
    """Why a step did not hold, briefly."""
    reasons = []
    if step.get("publish_error"):
        reasons.append("publisher stopped")
    if step["loss"]["fraction"] >= 0.001:
        reasons.append(f"loss {step['loss']['fraction'] * 100:.1f} %")
    if step["latency"]["p99_us"] >= 1_000_000:
        reasons.append(f"p99 {ms(step['latency']['p99_us'])}")
    if step["achieved_rate"] < 0.95 * step["rate"]:
        reasons.append("publisher behind")
    if generator_bound(step):
        reasons.append("generator-bound")
    closes = step.get("closes") or []
    if closes:
        reasons.append("closed " + ", ".join(f"{n} x {k}" for k, n in closes))
    return "; ".join(reasons) or "?"


def step_at(steps, deliveries, subs):
    want = deliveries / subs
    for s in steps:
        if abs(s["rate"] - want) < 1e-6 * max(1.0, want):
            return s
    return None


def per_rep(rep_dir, meta, with_sweep=True):
    """One round's figures; without its sweep (a round past `reps`), no highest rate."""
    subs = meta["subscribers"]
    low = load(os.path.join(rep_dir, "low.json"))
    sweep = load(os.path.join(rep_dir, "sweep.json"))
    idle = load(os.path.join(rep_dir, "idle.json"))
    r = {}
    steps = (low or {}).get("steps", []) + (sweep or {}).get("steps", [])
    if low is not None and with_sweep:
        # The sweep only counts when every low step held (it continues the same ladder).
        if not all(s["held"] for s in low["steps"]) or len(low["steps"]) < 2:
            steps = low["steps"]
        best, stop = None, None
        for s in steps:
            if s["held"]:
                best = s
            else:
                stop = s
                break
        if best is not None:
            r["highest"] = best["deliveries_per_sec"]
            r["highest_lower_bound"] = generator_bound(best) or (
                stop is None and sweep is not None
            )
            r["highest_rate"] = best["rate"]
        r["stop"] = (
            f"{rate(stop['rate'] * subs)}/s: {why_not(stop)}" if stop is not None else None
        )
    if low is not None:
        cpu_step = step_at(low["steps"], meta["cpu_deliveries"], subs)
        if cpu_step is not None:
            r["cpu"] = cpu_step.get("server_us_per_delivery")
        lat = step_at(low["steps"], meta["latency_deliveries"], subs)
        if lat is not None:
            r["p99"] = lat["latency"]["p99_us"]
            r["last_p99"] = lat["last_subscriber"]["p99_us"]
            r["lat_held"] = lat["held"]
            r["lat_gen"] = (lat.get("generator_cpu") or {}).get("percent")
    if idle is not None:
        b = idle.get("server_bytes_per_connection")
        if b is not None and idle["connect"]["ok"] > 0:
            r["idle"] = b / 1024
        r["idle_ok"] = idle["connect"]["ok"]
        r["idle_failed"] = idle["connect"]["failed"]
        r["idle_requested"] = idle["requested"]
    return r


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def build(out_dir):
    meta = load(os.path.join(out_dir, "meta.json"))
    if meta is None:
        sys.exit(f"table.py: no meta.json in {out_dir}")
    rows = []
    notes = []

    def reps_of(name):
        found = []
        for i in range(1, meta.get("low_reps", meta["reps"]) + 1):
            d = os.path.join(out_dir, name, f"rep{i}")
            if os.path.isdir(d):
                found.append(per_rep(d, meta, with_sweep=i <= meta["reps"]))
        return found

    # The floor row (one epoll loop, no protocol): every CPU figure is also shown as a
    # multiple of it.
    floor = None
    if any(row["id"] == "floor" for row in meta["rows"]):
        floor = median([r.get("cpu") for r in reps_of("floor")])
    for row in meta["rows"]:
        name = row["id"]
        reps = reps_of(name)
        get = lambda k: [r.get(k) for r in reps]  # noqa: E731
        hi = median(get("highest"))
        hi_txt = rate(hi) if hi is not None else "none held"
        if hi is not None and any(r.get("highest_lower_bound") for r in reps):
            hi_txt = "≥ " + hi_txt
        p99 = median(get("p99"))
        last = median(get("last_p99"))
        lat_txt = ms(p99)
        last_txt = ms(last)
        if reps and any(r.get("lat_held") is False for r in reps):
            lat_txt += " (not held)"
        cpu = median(get("cpu"))
        cpu_txt = f"{cpu:.2f}" if cpu is not None else "–"
        if cpu is not None and floor:
            cpu_txt += f" ({cpu / floor:.1f}× floor)"
        idle = median(get("idle"))
        idle_txt = f"{idle:.1f}" if idle is not None else "–"
        fails = [r for r in reps if r.get("idle_failed")]
        if fails:
            idle_txt += f" ({fails[0]['idle_ok']:,} of {fails[0]['idle_requested']:,} opened)"
        rows.append(
            f"| {row['label']} | `{row['protocol']}` | {hi_txt} | {lat_txt} | {last_txt} "
            f"| {cpu_txt} | {idle_txt} |"
        )
        stops = [r.get("stop") for r in reps if r.get("stop")]
        his = [rate(r["highest"]) for r in reps if r.get("highest") is not None]
        n = len(reps)
        detail = f"{row['label']}: highest held per run {', '.join(his) or 'none'}"
        if stops:
            detail += f"; the sweep stopped at {' | '.join(stops)}"
        elif n:
            detail += "; every rate of the sweep held"
        series = [
            ("p99 at 50k/s", [ms(v) for v in get("p99") if v is not None]),
            ("last-subscriber p99", [ms(v) for v in get("last_p99") if v is not None]),
            ("CPU µs per delivery", [f"{v:.2f}" for v in get("cpu") if v is not None]),
        ]
        for what, values in series:
            if values:
                detail += f"; {what} per round {', '.join(values)}"
        low_reps = meta.get("low_reps", meta["reps"])
        if n < low_reps:
            detail += f" ({n} of {low_reps} rounds produced results)"
        notes.append(detail)
    return meta, rows, notes


def render(meta, rows, notes):
    subs = meta["subscribers"]
    lines = [
        BEGIN,
        "",
        "Generated by `benches/compare/run.sh`; do not edit by hand, run it again.",
        "",
        f"Command: `{meta['command']}` (from the repository root). Date: {meta['date']}. "
        f"Whole run: {meta['elapsed']}. {meta['build']}",
        "",
        f"Conditions: every server pinned to core 0 (`taskset -c 0`; for the cross-node rows "
        f"both nodes and Redis share it), `hubbub-load` pinned to core 1; {subs:,} subscribers "
        f"in one room, {meta['payload']}-byte payloads, publisher on a WebSocket, "
        f"{meta.get('low_reps', meta['reps'])} round(s) of the two fixed rates and "
        f"{meta['reps']} of the sweep and idle scenarios per server, the servers taking turns "
        f"round by round, a fresh server for every run and scenario, medians shown. Sweep ladder (deliveries/s): {meta['ladder']}; warm-up "
        f"{meta['warmup']} s and {meta['low_duration']} s measured for the two fixed rates, "
        f"{meta['sweep_duration']} s per sweep step. Idle: {meta['idle_connections']:,} "
        f"connections at 2,000/s, memory read {meta['settle']} s after the last one. "
        f"Machine: {meta['machine']}. CPU used by other processes on the machine while each "
        f"row ran (busy time minus this run's own processes, in % of one core): "
        f"{meta['loads']}. {meta.get('wait_note', '')}",
        "",
        f"| server | adapter | highest deliveries/s with p99 < 1 s | p99 at "
        f"{meta['latency_deliveries']:,} deliveries/s | last-subscriber p99 at "
        f"{meta['latency_deliveries']:,}/s | server CPU µs per delivery at "
        f"{meta['cpu_deliveries'] / subs:g} msg/s × {subs:,} | idle KiB per connection "
        f"({meta['idle_connections']:,}) |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Reading the columns: \"held\" means loss < 0.1 %, p99 < 1 s and the publisher on "
        "schedule; \"≥\" marks a figure where the generator (one core) was the limit, not "
        "the server. Latency is receive time − send stamp, one clock. CPU per delivery at 1 "
        "msg/s is the cost of a delivery that is its own write (no batching). Idle memory is "
        "VmRSS growth (user space; kernel socket buffers are not in it). Cross-node rows: "
        "subscribers on node A, the publisher on node B, CPU summed over A, B and Redis, idle "
        "memory of node A.",
        "",
        "Servers:",
        "",
        *[f"- {row['label']}: {row['what']}" for row in meta["rows"]],
        "",
        "Per row:",
        "",
        *[f"- {n}" for n in notes],
        "",
        END,
    ]
    return "\n".join(lines) + "\n"


def rewrite(path, section):
    with open(path) as f:
        text = f.read()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n## Comparison with peers\n\n" + section
    with open(path, "w") as f:
        f.write(text)


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    out_dir = args[0]
    meta, rows, notes = build(out_dir)
    section = render(meta, rows, notes)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(section)
    print(section)
    if len(args) >= 3 and args[1] == "--benchmarks":
        rewrite(args[2], section)
        print(f"rewrote the comparison section of {args[2]}", file=sys.stderr)


if __name__ == "__main__":
    main()
