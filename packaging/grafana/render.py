#!/usr/bin/env python3
"""Draws a Grafana dashboard of packaging/grafana from a real Prometheus,
panel by panel where the dashboard puts them, for docs/ (Grafana's server
is not installable where Ferry is built). Each panel's queries are asked as
Grafana asks them (a range query, the dashboard's variables at All); a
time series is drawn as lines, a stat as its last values.

usage: render.py PROMETHEUS_URL SECONDS OUT_DIR DASHBOARD.json...
needs: matplotlib (pip install matplotlib)

`ferry-live --pictures DIR` runs it at the end of a live migration with
faults, scraped by Debian's Prometheus with the shipped config: that run
is the data of docs/dashboards/.
"""
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

prometheus, seconds, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
COLUMNS, ROW_INCHES, WIDTH_INCHES = 24, 0.42, 16.0


def query_range(expr):
    end = time.time()
    q = urllib.parse.urlencode({"query": expr, "start": end - seconds, "end": end, "step": 1})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{q}") as r:
        answer = json.load(r)
    if answer["status"] != "success":
        raise SystemExit(f"{expr}: {answer}")
    return answer["data"]["result"]


def legend(fmt, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt or "") or str(labels)


def draw(path):
    d = json.load(open(path))
    variables = [f"${v['name']}" for v in d.get("templating", {}).get("list", [])]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in d["panels"])
    fig = plt.figure(figsize=(WIDTH_INCHES, rows * ROW_INCHES + 0.6))
    fig.suptitle(f"{d['title']} (Ferry's dashboard, drawn from Prometheus)", fontsize=12)
    for p in d["panels"]:
        g = p["gridPos"]
        ax = fig.add_axes([
            g["x"] / COLUMNS + 0.01,
            1 - (g["y"] + g["h"]) / (rows + 1.5) + 0.02,
            g["w"] / COLUMNS - 0.03,
            g["h"] / (rows + 1.5) - 0.06,
        ])
        ax.set_title(p["title"], fontsize=9, loc="left")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        series = []
        for t in p.get("targets", []):
            expr = t["expr"]
            for v in variables:
                expr = expr.replace(v, ".*")
            for s in query_range(expr):
                points = [(float(x), float(y)) for x, y in s["values"]]
                series.append((legend(t.get("legendFormat"), s["metric"]), points))
        if p["type"] == "stat":
            ax.axis("off")
            text = "\n".join(f"{name}: {pts[-1][1]:g}" for name, pts in series[:6]) or "no data"
            ax.text(0.02, 0.5, text, fontsize=10, va="center", family="monospace")
            continue
        start = min((pts[0][0] for _, pts in series), default=0)
        for name, pts in series[:8]:
            ax.plot([x - start for x, _ in pts], [y for _, y in pts], label=name[:40], linewidth=1)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("seconds", fontsize=7)
        if unit:
            ax.set_ylabel(unit, fontsize=7)
        if series:
            ax.legend(fontsize=6, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
    name = os.path.splitext(os.path.basename(path))[0]
    fig.savefig(os.path.join(out_dir, f"{name}.png"), dpi=80)


os.makedirs(out_dir, exist_ok=True)
for path in sys.argv[4:]:
    draw(path)
