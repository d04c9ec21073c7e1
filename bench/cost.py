"""What capturing mail costs on Azure Functions Flex Consumption, from what a benchmark measured.

Flex Consumption bills an app in on-demand mode for "the total amount of memory provisioned while
each on demand instance is actively executing functions (in GB-seconds)" and "the total number of
executions" (Microsoft Learn, "Estimating consumption-based costs", Flex Consumption billing table,
https://learn.microsoft.com/azure/azure-functions/functions-consumption-costs). So the cost of a
mail is the instance memory size times the time the instance was busy per mail, plus the
executions per mail at the per-execution price. The instance memory is the smallest Flex size that
holds the worker's peak resident memory as measured.

Prices, East US, list price, without the monthly free grant (which covers a small installation
entirely), as published when this was written (2026-12-01):

- on-demand execution time: USD 0.000026 per GB-s;
- on-demand executions: USD 0.40 per million.

Source: the Azure Functions pricing page, https://azure.microsoft.com/pricing/details/functions/
(Flex Consumption tab; its stored copy renders the amounts client-side, so the GB-s rate was read
from the summary of that page in "Azure Functions pricing: Consumption vs. Flex Consumption",
modal.com, 2025-05-22, https://modal.com/blog/azure-function-pricing-guide, and the execution rate
should be checked on the live page before the figure is relied on). Change the constants here when
Azure changes its prices; docs/PERFORMANCE.md says which were used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PRICE_SOURCE = "https://azure.microsoft.com/pricing/details/functions/ (Flex Consumption, on demand, East US)"
PRICE_DATE = "2026-12-01"
USD_PER_GB_SECOND = 0.000026
USD_PER_MILLION_EXECUTIONS = 0.40
INSTANCE_MEMORY_MB = (512, 2048, 4096)  # the Flex Consumption instance sizes
MAILS = 100_000


def instance_memory_mb(peak_rss_mb: float) -> int:
    """The smallest Flex instance size that holds the measured peak (the largest if none does)."""
    return next((size for size in INSTANCE_MEMORY_MB if peak_rss_mb <= size), INSTANCE_MEMORY_MB[-1])


def flex_cost(busy_seconds_per_mail: float, executions_per_mail: float, peak_rss_mb: float) -> dict[str, Any]:
    """USD for 100,000 mails: memory-time while busy plus executions."""
    memory_gb = instance_memory_mb(peak_rss_mb) / 1024
    gb_seconds = MAILS * busy_seconds_per_mail * memory_gb
    executions = MAILS * executions_per_mail
    usd = gb_seconds * USD_PER_GB_SECOND + executions / 1e6 * USD_PER_MILLION_EXECUTIONS
    return {
        "usd_per_100k_mails": round(usd, 4),
        "usd_per_100k_mails_gb_s": round(gb_seconds, 1),
        "usd_per_100k_mails_executions": round(executions),
        "flex_instance_memory_mb": instance_memory_mb(peak_rss_mb),
        "price_usd_per_gb_s": USD_PER_GB_SECOND,
        "price_usd_per_million_executions": USD_PER_MILLION_EXECUTIONS,
        "price_source": PRICE_SOURCE,
        "price_date": PRICE_DATE,
    }


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its waited-for children, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3; utime, stime, cutime, cstime are fields 14-17.
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def process_peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for process {pid}")
