"""The results file (Markdown) and chart of a benchmark run."""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Any

from .bench_app import CONTENDERS
from .harness import (
    LABELS,
    percentile,
)


def mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def fmt_rate(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:,.0f}/s"


def report(data: dict[str, Any], out: Path) -> str:
    mode = data["mode"]
    c = data["contenders"]
    lines = [
        f"# celery_dlx benchmark ({mode['name']} mode)\n",
        f"`{data['command']}` on {data['date']}, RabbitMQ {data['rabbitmq']}, Celery {data['celery']}, kombu {data['kombu']}, "
        f"{os.cpu_count()} cores; runtime {data['runtime_s'] / 60:.1f} min. All contenders ran in this one run, one after "
        "another, on the same broker (shared with other work on the machine: compare ratios, not absolutes). "
        "Worker prefork -c 2 unless noted; `worker_prefetch_multiplier=4`.\n",
        "## 1. Worker memory and unacked as pending retries grow\n",
        f"Retries with a 1 h delay. Baseline measured after a warm-up on the same worker ({mode['warmup_note']}); "
        "growth = RSS/USS of the worker parent + prefork children minus that baseline. "
        "Unacked: `rabbitmqctl list_queues messages_unacknowledged` of the work queue. "
        "Absorb rate: new tasks per second in that step (each task runs once and publishes one retry).\n",
        "| contender | pending target | reached | in broker | worker unacked | time | absorb rate | RSS | RSS growth | USS growth |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        if "growth" not in c.get(name, {}):
            continue
        g = c[name]["growth"]
        previous = 0
        for s in g["steps"]:
            status = f"{s['seconds']:.1f} s" if s["finished"] else f"did not finish in {s['cap']:.0f} s"
            step_rate = (min(s["reached"], s["target"]) - previous) / s["seconds"] if s["seconds"] else math.nan
            lines.append(
                f"| {LABELS[name]} | {s['target']:,} | {s['reached']:,} | {s['broker_pending']:,} | {s['unacked']:,} | {status} "
                f"| {fmt_rate(step_rate)} | {mb(s['rss'])} | {(s['rss'] - g['base_rss']) / 2**20:+.1f} MB "
                f"| {(s['uss'] - g['base_uss']) / 2**20:+.1f} MB |"
            )
            previous = s["target"]
    lines += [
        "\n## 2. Time to absorb N failing tasks that each schedule one retry\n",
        "Prefork -c 2: the steps of section 1. Solo: fresh solo workers (all started together, idle until their "
        f"turn), {data['solo_n']:,} tasks each, one contender at a time. Time includes the worker's first retry "
        "(celery_dlx declares its topology then).\n",
        "| contender | pool | N | time | tasks/s | unacked after |",
        "|---|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        if "growth" not in c.get(name, {}):
            continue
        steps = c[name]["growth"]["steps"]
        previous = 0
        for s in steps:
            if s["finished"]:
                lines.append(f"| {LABELS[name]} | prefork -c 2 | {s['target'] - previous:,} (to {s['target']:,}) | {s['seconds']:.1f} s | {fmt_rate((s['target'] - previous) / s['seconds'])} | {s['unacked']:,} |")
            else:
                lines.append(f"| {LABELS[name]} | prefork -c 2 | {s['target'] - previous:,} (to {s['target']:,}) | did not finish in {s['cap']:.0f} s: {s['reached']:,} pending | {fmt_rate((s['reached'] - previous) / s['seconds'])} | {s['unacked']:,} |")
            previous = s["target"]
        solo = c[name].get("solo")
        if solo:
            status = f"{solo['seconds']:.1f} s" if solo["finished"] else f"did not finish in {solo['cap']:.0f} s: {solo['reached']:,} pending"
            lines.append(f"| {LABELS[name]} | solo | {solo['n']:,} | {status} | {fmt_rate(solo['reached'] / solo['seconds'])} | {solo['unacked']:,} |")
    lines += [
        "\n## 3. Retry publish throughput\n",
        f"Tasks that retry at once (delay 10 ms; native: 1 s, the smallest it accepts) on the prefork workers; each "
        "task runs twice and publishes one retry. Rate = tasks / (last arrival − first send − delay). The contenders "
        f"take turns, {mode['publish_rounds']} rounds in rotating order with all workers up, so load from elsewhere "
        "hits them alike; median of the rounds. celery_dlx always publishes its retries confirmed, mandatory and "
        "persistent; Celery publishes without confirms unless `broker_transport_options={'confirm_publish': True}`.\n",
        "| contender | tasks per round | all back | median tasks/s | min – max | vs countdown |",
        "|---|---|---|---|---|---|",
    ]
    base = c.get("countdown", {}).get("publish", {}).get("rate")
    rows = [(n, c[n]["publish"]) for n in CONTENDERS if "publish" in c.get(n, {})]
    if "countdown_confirm" in data:
        rows.insert(1, ("countdown_confirm", data["countdown_confirm"]))
    for name, p in rows:
        ratio = f"{p['rate'] / base:.2f}×" if base else "-"
        lines.append(f"| {LABELS[name]} | {p['n']:,} | {'yes' if p['complete'] else 'no'} | {fmt_rate(p['rate'])} | {p['min']:,.0f} – {p['max']:,.0f} | {ratio} |")
    lines += [
        "\n## 4. Delivery lateness (arrival − due)\n",
        f"Delays uniform in 0.1–{mode['lateness_max_delay']:.0f} s; due = `time.time() + delay` computed by the task "
        f"just before `self.retry`, the same for every contender. One contender at a time (the others' workers idle), "
        f"sent at up to {mode['lateness_rate']:.0f}/s and only while the work queue has no backlog (≤ 20 ready), "
        f"for at most {mode['lateness_send_cap']:.0f} s. Early = arrived before due; missing = never arrived.\n",
        "| contender | planned | sent | arrived | missing | median | p90 | p99 | max | early | sub-second delays sent | mean hops | p99 of lateness − 25 ms·hops | over 100 ms + 25 ms·hops |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        if "lateness" not in c.get(name, {}):
            continue
        L = c[name]["lateness"]
        late = L["lateness_ms"]
        if late:
            stats = (f"{statistics.median(late):.1f} ms | {percentile(late, 0.9):.1f} ms | {percentile(late, 0.99):.1f} ms "
                     f"| {max(late):.1f} ms | {sum(x < 0 for x in late)}")  # fmt: skip
        else:
            stats = "- | - | - | - | -"
        hops = L.get("hops")
        if hops:
            excess = [x - 25 * h for x, h in zip(late, hops)]
            budget = (f"{statistics.mean(hops):.1f} | {percentile(excess, 0.99):.1f} ms "
                      f"| {sum(e > 100 for e in excess)} of {len(excess)}")  # fmt: skip
        else:
            budget = "- | - | -"
        lines.append(f"| {LABELS[name]} | {L['planned']:,} | {L['sent']:,} | {L['arrived']:,} | {L['missing']:,} | {stats} | {L['sub_second_sent']:,} | {budget} |")
    t = data.get("timeout")
    if t and "error" in t:
        lines.append(f"\n## 5. consumer_timeout\n\nfailed: `{t['error']}`")
    elif t:
        lines += [
            "\n## 5. A 45-minute retry with `consumer_timeout` lowered\n",
            f"Throwaway RabbitMQ node with `consumer_timeout = {t['consumer_timeout_ms']}` ms (channels check it every 5 s: "
            f"`channel_tick_interval`); {t['countdown']['tasks']} tasks per contender, each retrying once with a 2 700 s "
            f"delay; observed for {t['observe_seconds']:.0f} s. Celery {data['celery']} treats the channel error as "
            "unrecoverable and the worker process exits; the benchmark restarts it, as a process supervisor would. "
            "Redeliveries: deliveries in the worker log (`received`) beyond the first of each message. Node log lines "
            f"about delivery acknowledgement timeouts: {t['node_log_ack_timeouts']}.\n",
            "| contender | channel closed (PRECONDITION_FAILED in worker log) | worker exits (restarted) | redeliveries | max unacked | unacked at end | in delay queues |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in ("countdown", "dlx_classic"):
            r = t[name]
            lines.append(f"| {LABELS[name]} | {r['worker_log_precondition_failed']} | {r['worker_exits_restarted']} | {r['redeliveries']} | {r['max_unacked']} | {r['final_unacked']} | {r['broker_pending']} |")
        if t.get("node_log_lines"):
            lines.append(f"\nNode log, first line: `{t['node_log_lines'][0].strip()[:300]}`")
    lines += ["\n## 6. Broker memory per pending message\n",
              "`rabbitmqctl list_queues name messages memory` summed over the delay queues, with the pending retries of "
              "section 1 (or 7) minus the same queues empty, divided by the messages. The queue process memory only: "
              "message bodies that a classic queue has paged to disk and quorum queues' log on disk are not in it.\n",
              "| delay queues | source | messages | queue memory | per message |", "|---|---|---|---|---|"]  # fmt: skip
    for name, source in (("dlx_classic", "section 1"), ("dlx_quorum", "section 1"), ("native", "section 1 (celery_delayed_*)")):
        if "growth" in c.get(name, {}):
            q, e = c[name]["growth"]["queue_memory"], c[name]["growth"].get("queue_memory_empty", {})
            msgs = sum(v[0] for v in q.values()) - sum(v[0] for v in e.values())
            memory = sum(v[1] for v in q.values()) - sum(v[1] for v in e.values())
            per = f"{memory / msgs:,.0f} B" if msgs else "-"
            lines.append(f"| {LABELS[name]} | {source} | {msgs:,} | {mb(memory)} | {per} |")
    m = data.get("million")
    if m:
        q, e = m["queue_memory"], m["queue_memory_empty"]
        msgs = sum(v[0] for v in q.values()) - sum(v[0] for v in e.values())
        memory = sum(v[1] for v in q.values()) - sum(v[1] for v in e.values())
        lines.append(f"| {LABELS['dlx_classic']}, lazy policy | section 7 | {msgs:,} | {mb(memory)} | {memory / max(msgs, 1):,.0f} B |")
        lines += [
            "\n## 7. Other tasks' throughput with a million retries pending\n",
            f"{m['pending']:,} celery_dlx retry messages (1 h delay) published straight into the classic delay topology with "
            f"kombu in {m['fill_seconds']:.0f} s (not through the worker; the delay queues under a `queue-mode: lazy` "
            f"policy so the million sit on disk, not in the shared broker's RAM); {m['n']:,} no-op tasks (each one Redis INCR) "
            "through a celery_dlx worker, before, while they wait and after purging them.\n",
            "| pending | no-op tasks/s | vs 0 pending (mean of before and after) |", "|---|---|---|",
            f"| 0 (before) | {fmt_rate(m['before'])} | |",
            f"| {m['pending']:,} | {fmt_rate(m['during'])} | {m['during'] / ((m['before'] + m['after']) / 2):.2f}× |",
            f"| 0 (after purge) | {fmt_rate(m['after'])} | |",
        ]  # fmt: skip
    lines.append(f"\nPlot: [{out.name}]({out.name}) (worker RSS vs pending retries; lateness distribution).")
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = data["contenders"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for name in CONTENDERS:
        if "growth" not in c.get(name, {}):
            continue
        g = c[name]["growth"]
        xs = [0] + [s["reached"] for s in g["steps"]]
        ys = [g["base_rss"] / 2**20] + [s["rss"] / 2**20 for s in g["steps"]]
        ax1.plot([max(x, 1) for x in xs], ys, marker="o", label=LABELS[name])
        for s in g["steps"]:
            if not s["finished"]:
                ax1.annotate(f"capped at {s['cap']:.0f} s", (max(s["reached"], 1), s["rss"] / 2**20), fontsize=8)
    ax1.set_xscale("log")
    ax1.set_xlabel("pending retries (log; 1 = none)")
    ax1.set_ylabel("worker RSS, parent + children (MB)")
    ax1.set_title("Worker memory vs pending retries (prefork -c 2, after warm-up)")
    ax1.legend(fontsize=8)
    for name in CONTENDERS:
        if "lateness" not in c.get(name, {}):
            continue
        late = sorted(c[name]["lateness"]["lateness_ms"])
        if late:
            ys = [(i + 1) / len(late) for i in range(len(late))]
            ax2.plot(late, ys, label=f"{LABELS[name]} (n={len(late)})")
    ax2.set_xscale("symlog", linthresh=10)
    ax2.axvline(0, color="black", linewidth=0.8)
    ax2.set_xlabel("arrival − due (ms, symlog; < 0 = early)")
    ax2.set_ylabel("fraction of retries")
    ax2.set_title("Delivery lateness, cumulative")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
