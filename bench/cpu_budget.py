"""Capping processes at a share of one CPU (a cgroup CPU quota), to measure how throughput scales with
CPU on a machine with no idle cores to give.

On a 2-core machine the load generator and the fake upstream take most of a core, so `serve --workers 2`
cannot get a core per worker and the plain scaling factor says more about the machine than about the
proxy. Capping every worker process at the same share (say 0.4 CPU) in both runs gives two workers twice
the CPU of one while leaving the load generator and the upstream enough: the factor then shows whether
anything the workers share (the listening port, the state store) keeps them from scaling.

Needs a writable cgroup CPU controller (cgroup v1 `cpu`, or v2 with `cpu` delegable), as root usually has
on a VM or a privileged container; otherwise `CpuBudget.unavailable()` says why and the rows are skipped.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 20_000  # short periods: a capped process runs in 8 ms slices, not 40 ms bursts


def _own_cgroup_path(controller: str | None) -> str | None:
    """This process's cgroup path for a v1 `controller`, or the v2 path when `controller` is None."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            names = controllers.split(",") if controllers else []
            if (controller is None and not controllers) or (controller is not None and controller in names):
                return path
    return None


class CpuBudget:
    """Cgroups made for this run, one per capped process; `close()` removes them."""

    def __init__(self, tag: str) -> None:
        self._tag = tag
        self._made: list[Path] = []
        self._base, self._v2, self._why_not = self._find_base()

    @staticmethod
    def _find_base() -> tuple[Path | None, bool, str]:
        v1 = next(
            (
                CGROUP_ROOT / name
                for name in ("cpu", "cpu,cpuacct")
                if (CGROUP_ROOT / name / "cpu.cfs_quota_us").exists()
            ),
            None,
        )
        if v1 is not None:
            own = _own_cgroup_path("cpu") or "/"
            base = v1 / own.lstrip("/")
            return (base, False, "") if os.access(base, os.W_OK) else (None, False, f"{base} is not writable")
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            own = _own_cgroup_path(None) or "/"
            base = CGROUP_ROOT / own.lstrip("/")
            try:
                if "cpu" not in (base / "cgroup.subtree_control").read_text().split():
                    (base / "cgroup.subtree_control").write_text("+cpu")
            except OSError as error:
                return None, True, f"cannot delegate the cpu controller under {base}: {error}"
            return base, True, ""
        return None, False, "no cgroup CPU controller under /sys/fs/cgroup"

    def unavailable(self) -> str | None:
        """Why processes cannot be capped here, or None when they can."""
        return self._why_not or None

    def cap(self, pid: int, cpus: float) -> None:
        """Limit `pid` (and the threads and children it starts later) to `cpus` of one CPU's time."""
        if self._base is None:
            raise RuntimeError(self._why_not)
        group = self._base / f"gcp-bench-{os.getpid()}-{self._tag}-{len(self._made)}"
        group.mkdir()
        self._made.append(group)
        quota = int(cpus * PERIOD_US)
        if self._v2:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        (group / "cgroup.procs").write_text(str(pid))

    def close(self) -> None:
        """Move whatever is still inside back to the parent group, then remove the groups."""
        assert self._base is not None or not self._made
        for group in self._made:
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self._base / "cgroup.procs").write_text(pid)  # type: ignore[operator]
            with contextlib.suppress(OSError):
                group.rmdir()
        self._made.clear()
