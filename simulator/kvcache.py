"""KV-cache block accounting with prefix caching, as vLLM V1's block pool does it.

A pod's KV cache is ``total`` blocks of ``block_size`` tokens. A block is *used* while a running
request references it, *evictable* when it holds a cached prefix nobody references (it still
counts as free for ``vllm:kv_cache_usage_perc`` and is reclaimed in LRU order), and *free*
otherwise. Only blocks that can be shared (full blocks inside a request's shared prefix) carry a
key; a request's private blocks are plain counts, because no other request can ever hit them.

Usage follows vLLM: ``usage = 1 - (free + evictable) / total`` = ``used / total``.
Example: 1,000 blocks, 300 referenced by running requests, 200 cached but unreferenced:
usage = 300 / 1,000 = 0.30, and 700 blocks can be allocated (200 of them by evicting the cache).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from itertools import takewhile


class BlockPool:
    """Counts used/evictable/free blocks and keeps the prefix cache's key → refcount map."""

    __slots__ = ("_evictable", "_refs", "block_size", "caching", "total", "used")

    def __init__(self, total: int, block_size: int = 16, caching: bool = True) -> None:
        if total <= 0:
            raise ValueError(f"KV cache must hold at least one block, got {total}")
        self.total = total
        self.block_size = block_size
        self.caching = caching
        self.used = 0
        self._refs: dict[int, int] = {}
        self._evictable: OrderedDict[int, None] = OrderedDict()

    @property
    def available(self) -> int:
        """Blocks that can be allocated now (free plus evictable)."""
        return self.total - self.used

    @property
    def usage(self) -> float:
        return self.used / self.total

    def cached_prefix_blocks(self, keys: Sequence[int]) -> int:
        """Number of leading ``keys`` resident in the cache (used or evictable); read-only."""
        return len(list(takewhile(self._refs.__contains__, keys)))  # the loop in C

    def acquire_cached(self, keys: Sequence[int]) -> None:
        """Reference resident blocks (prefix hits). Caller checked they are resident."""
        refs = self._refs
        evictable = self._evictable
        for key in keys:
            r = refs[key]
            if r == 0:
                del evictable[key]
                self.used += 1
            refs[key] = r + 1

    def allocate(self, n_private: int, shared_keys: Sequence[int]) -> bool:
        """Allocate private blocks and shareable keyed blocks; all or nothing.

        A shareable key already resident is referenced instead of allocated again.
        """
        refs = self._refs
        missing = 0
        revived = 0
        for key in shared_keys:
            r = refs.get(key)
            if r is None:
                missing += 1
            elif r == 0:
                revived += 1
        if n_private + missing + revived > self.total - self.used:
            return False
        evictable = self._evictable
        for key in shared_keys:  # take our own cached blocks off the eviction list first
            r = refs.get(key)
            if r is not None:
                if r == 0:
                    del evictable[key]
                    self.used += 1
                refs[key] = r + 1
        fresh = n_private + missing
        for _ in range(max(0, fresh - (self.total - self.used - len(evictable)))):
            old, _none = evictable.popitem(last=False)
            del refs[old]
        self.used += fresh
        for key in shared_keys:
            if key not in refs:
                refs[key] = 1
        return True

    def release(self, n_private: int, shared_keys: Sequence[int]) -> None:
        """Drop a request's references; shareable blocks stay cached (tail first to evict)."""
        self.used -= n_private
        refs = self._refs
        for key in reversed(shared_keys):
            r = refs[key] - 1
            refs[key] = r
            if r == 0:
                self.used -= 1
                if self.caching:
                    self._evictable[key] = None
                else:
                    del refs[key]

    @property
    def cached_blocks(self) -> int:
        return len(self._refs)
