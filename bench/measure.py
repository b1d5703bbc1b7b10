"""Run a step as a child process; record the peak memory and CPU time of it and every process it
starts, and how busy the whole machine was meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Peaks:
    """Peak resident memory (VmHWM, bytes) per process of a tree, with a label for each; the
    CPU seconds each used; and the share of all cores the machine was busy (`machine`)."""

    by_pid: dict[int, tuple[str, int]] = field(default_factory=dict)
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    machine: float = 0.0

    def update(self, root: int) -> None:
        for pid in [root, *_descendants(root)]:
            stat = _read(f"/proc/{pid}/stat").rpartition(")")[2].split()
            if len(stat) > 12:  # utime and stime, the 14th and 15th fields
                used = (int(stat[11]) + int(stat[12])) / TICKS
                self.cpu_by_pid[pid] = max(used, self.cpu_by_pid.get(pid, 0.0))
            status = _read(f"/proc/{pid}/status")
            match = [line for line in status.splitlines() if line.startswith("VmHWM:")]
            if not match:
                continue
            peak = int(match[0].split()[1]) * 1024
            label = self.by_pid.get(pid, (_label(pid, root), 0))[0]
            self.by_pid[pid] = (label, max(peak, self.by_pid.get(pid, ("", 0))[1]))

    def summary(self) -> list[tuple[str, int]]:
        """(label, peak bytes) per process, the main one first; helpers of Python left out."""
        rows = sorted(self.by_pid.values(), key=lambda item: (item[0] != "main", item[0]))
        return [row for row in rows if row[0] != "resource tracker"]

    def cpu(self) -> list[tuple[str, float]]:
        """(label, CPU seconds) per process, in the order of `summary`."""
        rows = [(label, self.cpu_by_pid.get(pid, 0.0)) for pid, (label, _) in self.by_pid.items()]
        rows.sort(key=lambda item: (item[0] != "main", item[0]))
        return [row for row in rows if row[0] != "resource tracker"]


class Sampler:
    """Samples a process tree's memory every `interval` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._interval = interval

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peaks.update(self.pid)
            self._stop.wait(self._interval)


def run_child(args: list[str], env: dict[str, str]) -> tuple[dict[str, object], Peaks]:
    """Run `args` (which prints one JSON line), sampling its memory; its result and peaks."""
    busy_before, all_before = _machine_ticks()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, env=env)
    with Sampler(process.pid) as sampler:
        # Sample right before the process exits too: read the peaks while it is a zombie-to-be.
        out, _ = process.communicate()
    busy_after, all_after = _machine_ticks()
    sampler.peaks.machine = (busy_after - busy_before) / max(1, all_after - all_before)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {process.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1]), sampler.peaks


def _machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat."""
    fields = [int(value) for value in _read("/proc/stat").split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def _descendants(root: int) -> list[int]:
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        for task in _tasks(pid):
            children = _read(f"/proc/{pid}/task/{task}/children").split()
            for child in map(int, children):
                found.append(child)
                frontier.append(child)
    return found


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def _label(pid: int, root: int) -> str:
    if pid == root:
        return "main"
    cmdline = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "spawn_main" in cmdline:
        return f"parser {pid}"
    return f"child {pid}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def timed(action: object) -> float:
    began = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - began
