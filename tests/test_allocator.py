"""The clean jobs' malloc tuning: applied on glibc, harmless elsewhere."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from pretrain_mix.allocator import reuse_freed_memory


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_glibc_takes_the_settings() -> None:
    assert ctypes.util.find_library("c")
    assert reuse_freed_memory() is True
    assert reuse_freed_memory() is True  # once per process: the second call is cached
