"""Where the cores went: CPU time of the server, the load generator, PostgreSQL and the rest.

Each phase reports the cores each part used, read from /proc, and "other": the rest of the
machine's busy time, which is other programs but also kernel work that no process is
charged for (under heavy loopback traffic that can be a good part of a core). Whether
other programs were busy is measured once, before the run, by idle_check().
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each of these processes."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / TICKS
        except (OSError, IndexError, ValueError):
            pass  # gone
    return used


def descendants(pid: int) -> list[int]:
    """pid and all its descendants."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def postgres_pids(postmaster: int, database: str) -> list[int]:
    """The server's own processes (WAL writer, checkpointer...) and the backends serving
    `database`; backends of other databases on a shared server count as "other"."""
    pids = []
    for pid in descendants(postmaster):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        client = "(" in cmd or "[local]" in cmd
        if not client or f" {database} " in cmd:
            pids.append(pid)
    return pids


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS


class CpuMeter:
    """`with CpuMeter(groups) as m:` ... then m.cores: cores used per group, and "other"."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.cores: dict[str, float] = {}
        self.per_process: dict[str, list[float]] = {}  # busiest first

    def __enter__(self) -> CpuMeter:
        self.start = {name: cpu_seconds(pids()) for name, pids in self.groups.items()}
        self.busy = machine_busy()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t0
        for name, pids in self.groups.items():  # per process: some start or end meanwhile
            now = cpu_seconds(pids())
            used = {pid: t - self.start[name].get(pid, 0.0) for pid, t in now.items()}
            self.cores[name] = round(sum(used.values()) / wall, 2)
            self.per_process[name] = sorted(
                (round(u / wall, 2) for u in used.values() if u / wall >= 0.01), reverse=True)
        busy = (machine_busy() - self.busy) / wall
        self.cores["other"] = round(max(0.0, busy - sum(self.cores.values())), 2)


def idle_check(seconds: float = 2.0) -> float:
    """Cores the machine spends busy while this benchmark does nothing."""
    before = machine_busy()
    time.sleep(seconds)
    return round((machine_busy() - before) / seconds, 2)
