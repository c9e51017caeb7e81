"""What the CPU can do natively, read once from the kernel's feature flags."""

from __future__ import annotations

import functools
import platform

#: Flags of CPUs with native bf16 arithmetic: Intel AMX tiles and AVX512-BF16
#: (Sapphire Rapids and newer, AMD Zen 4 and newer). Elsewhere bf16 is emulated
#: and slower than f32, so it is never chosen automatically there.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: Flags of CPUs with int8 dot-product instructions (VNNI, AMX), which quantised networks need to be fast.
NATIVE_INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name, e.g. 'AMD EPYC 9R14' (the machine name in every benchmark)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware."""
    return any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)


def native_int8() -> bool:
    """True when the CPU has int8 dot-product instructions."""
    return any(flag in cpu_flags() for flag in NATIVE_INT8_FLAGS)
