"""PNG chart of simulator runs: pending tasks and nodes over time, one panel per formula (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from .simulate import SimResult


def write_chart(results: list[SimResult], path: str | Path, title: str = "") -> Path:
    import matplotlib  # here, not at the top: heavy, and only the dev install has it (--chart needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(11, 3.2 * len(results)), sharex=True, squeeze=False)
    for ax, result in zip(axes[:, 0], results, strict=True):
        minutes = [row[0] / 60 for row in result.timeline]
        ax.fill_between(minutes, [row[1] + row[2] for row in result.timeline], step="post", alpha=0.3,
                        color="tab:orange", label="pending tasks (active + running)")
        ax.step(minutes, [row[1] for row in result.timeline], where="post", color="tab:red", linewidth=0.8,
                label="active (queued) tasks")
        ax.set_ylabel("tasks")
        nodes_ax = ax.twinx()
        nodes_ax.step(minutes, [row[3] for row in result.timeline], where="post", color="tab:blue",
                      label="dedicated nodes")
        nodes_ax.step(minutes, [row[4] for row in result.timeline], where="post", color="tab:green",
                      label="spot nodes")
        nodes_ax.set_ylabel("nodes")
        nodes_ax.set_ylim(bottom=0)
        s = result.summary()
        ax.set_title(f"{result.name}: {s['node_minutes']:.0f} node-min ({s['ratio_to_lower_bound']:.2f}x lower bound),"
                     f" wait p95 {s['wait_p95_s'] / 60:.1f} min", fontsize=10)
        handles = ax.get_legend_handles_labels()
        more = nodes_ax.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("simulated minutes")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
