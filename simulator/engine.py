"""One pod's vLLM V1 engine: continuous batching with chunked prefill, KV blocks, prefix caching.

The scheduler follows vLLM V1's ``Scheduler.schedule()``: every step first serves the running
requests in order (one decode token each, or the next prefill chunk), then admits waiting requests
(FCFS, or by priority) while the token budget (``max_num_batched_tokens``), ``max_num_seqs`` and
free KV blocks allow. A running request that cannot get a KV block preempts the most recently
admitted request (recompute: its blocks are freed and it waits again, at the front of the queue,
to prefill its prompt plus what it had already generated).

Step coalescing makes the simulator fast. While every running request is decoding and nothing can
be admitted, step ``i`` of the stretch takes ``alpha + beta·(K0 + i·n)`` (``n`` sequences whose
contexts grow by one token a step), so ``k`` steps end after

    T(k) = k·alpha + beta·(k·K0 + n·k·(k − 1)/2)

and the engine jumps to the first completion (or KV exhaustion) in one move. Example: n = 10,
K0 = 5,000, alpha = 7 ms, beta = 1e-7 s/token: 50 steps take 50·7 ms + 1e-7·(250,000 + 12,250)
= 376.2 ms.

Time is the engine's own: ``now`` is when its current step ends. The cluster calls ``advance(t)``
before handing it a request arriving at ``t`` (a step already started when the request arrives
runs without it, exactly as in vLLM) and ``run_stretch()`` when ``next_event_time()`` is reached.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from simulator.kvcache import BlockPool
from simulator.metrics.vllm import VllmMetrics
from simulator.perf.model import StepTimeModel
from simulator.workload import RequestSpec

INF = math.inf


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The vLLM engine arguments the model honours (names as vLLM's CLI flags)."""

    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    max_model_len: int = 8192
    block_size: int = 16
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    scheduling_policy: Literal["fcfs", "priority"] = "fcfs"


class Seq:
    """A request inside one engine (a request preempted and re-admitted stays the same Seq)."""

    __slots__ = (
        "arrival",
        "blocks",
        "computed",
        "finish_reason",
        "finish_t",
        "first_sched",
        "first_token_t",
        "out",
        "owner",
        "preemptions",
        "prefix_hit_tokens",
        "prefix_keys",
        "prompt",
        "remote_kv",
        "rid",
        "shared",
        "spec",
        "target_out",
    )

    def __init__(
        self,
        rid: int,
        spec: RequestSpec,
        arrival: float,
        target_out: int,
        prefix_keys: Sequence[int],
        remote_kv: bool = False,
        owner: object = None,
    ) -> None:
        self.rid = rid
        self.spec = spec
        self.arrival = arrival
        self.prompt = (
            spec.input_tokens
        )  # tokens to prefill (prompt + output so far after preemption)
        self.target_out = target_out
        self.out = 0
        self.computed = 0
        self.blocks = 0  # KV blocks held (private + shared)
        self.shared: list[int] = []  # keys of the shared blocks held
        self.prefix_keys = prefix_keys
        self.prefix_hit_tokens = 0
        self.remote_kv = remote_kv  # P/D decode side: prompt KV arrives from a prefill pod
        self.first_sched = -1.0
        self.first_token_t = -1.0
        self.finish_t = -1.0
        self.finish_reason = ""
        self.preemptions = 0
        self.owner = owner

    @property
    def decoding(self) -> bool:
        return self.computed >= self.prompt


def prefix_block_keys(spec: RequestSpec, block_size: int) -> tuple[int, ...]:
    """Chained keys of the full KV blocks of ``spec``'s shared prefix.

    Block ``j`` covers tokens ``[j·B, (j+1)·B)``; its key identifies every prefix unit up to the
    unit holding it plus the block's position inside that unit, so two requests get equal keys
    exactly when they share all tokens up to the end of that block. Requests sharing a prefix
    share its keys: they are computed once per (prefix units, length, unit size, block size).
    """
    return _chained_keys(
        spec.prefix_ids, spec.shared_prefix_tokens, spec.prefix_unit_tokens, block_size
    )


@functools.lru_cache(maxsize=4096)
def _chained_keys(
    prefix_ids: tuple[int, ...], shared_tokens: int, unit: int, block_size: int
) -> tuple[int, ...]:
    n_blocks = shared_tokens // block_size
    keys: list[int] = []
    chain = 0
    last_unit = -1
    for j in range(n_blocks):
        u = (j * block_size) // unit
        if u != last_unit:
            chain = hash((chain, prefix_ids[u]))
            last_unit = u
        keys.append(hash((chain, j)))
    return tuple(keys)


FinishCallback = Callable[[Seq], None]


def stretch_time(k: int, n: int, k0: int, alpha: float, beta: float) -> float:
    """``T(k)`` of the module docstring: ``k`` decode steps of ``n`` sequences whose contexts
    total ``k0`` tokens at the first step."""
    return k * alpha + beta * (k * k0 + n * k * (k - 1) / 2)


class Engine:
    """vLLM V1 engine of one pod; see the module docstring for the timing model."""

    def __init__(
        self,
        step: StepTimeModel,
        kv_blocks: int,
        config: EngineConfig,
        metrics: VllmMetrics,
        on_finish: FinishCallback,
        now: float = 0.0,
        coalesce: bool = True,
    ) -> None:
        self.step = step
        self.coalesce = coalesce  # False: one step at a time (the reference the tests compare to)
        self.cfg = config
        self.kv = BlockPool(kv_blocks, config.block_size, config.enable_prefix_caching)
        self.metrics = metrics
        self.on_finish = on_finish
        self.now = now
        self.running: list[Seq] = []
        self.waiting: deque[Seq] = deque()
        self._prio: list[tuple[int, float, int, Seq]] = []  # heap for priority scheduling
        self._stretch: tuple[float, int] | None = None  # cached (end time, steps) of decode stretch
        self.steps = 0

    # ------------------------------------------------------------------ queries
    @property
    def num_waiting(self) -> int:
        return len(self.waiting) + len(self._prio)

    @property
    def has_work(self) -> bool:
        return bool(self.running) or bool(self.waiting) or bool(self._prio)

    @property
    def in_flight(self) -> int:
        return len(self.running) + self.num_waiting

    def prefill_tokens_in_flight(self) -> int:
        """Prompt tokens still to be computed (running prefills and waiting requests)."""
        n = sum(s.prompt - s.computed for s in self.running if s.computed < s.prompt)
        n += sum(s.prompt for s in self._waiting_iter())
        return n

    def decode_tokens_in_flight(self) -> int:
        """Output tokens still to be generated by admitted and waiting requests."""
        return sum(s.target_out - s.out for s in self.running) + sum(
            s.target_out - s.out for s in self._waiting_iter()
        )

    def prefix_match_tokens(self, spec: RequestSpec, keys: Sequence[int] | None = None) -> int:
        """Prompt tokens of ``spec`` already in this pod's prefix cache (what a precise
        prefix-cache scorer would see)."""
        if not self.cfg.enable_prefix_caching:
            return 0
        if keys is None:
            keys = prefix_block_keys(spec, self.cfg.block_size)
        return self.kv.cached_prefix_blocks(keys) * self.cfg.block_size

    def _waiting_iter(self) -> list[Seq]:
        return list(self.waiting) + [e[3] for e in self._prio]

    # ------------------------------------------------------------------ input
    def add(self, seq: Seq) -> None:
        """Queue a request. Call ``advance(seq.arrival)`` first."""
        if not self.has_work and self.now < seq.arrival:
            self.now = seq.arrival
        total = seq.spec.input_tokens + seq.target_out
        if seq.spec.input_tokens < 1 or total > self.cfg.max_model_len:
            seq.finish_reason = "rejected"
            seq.finish_t = seq.arrival
            self.on_finish(seq)
            return
        if self.cfg.scheduling_policy == "priority":
            heapq.heappush(self._prio, (-seq.spec.priority, seq.arrival, seq.rid, seq))
        else:
            self.waiting.append(seq)
        self.metrics.num_requests_waiting = self.num_waiting
        self._stretch = None

    def abort_waiting(self) -> list[Seq]:
        """Remove and return every request not yet admitted (used when a pod is deleted)."""
        out = self._waiting_iter()
        self.waiting.clear()
        self._prio.clear()
        self._stretch = None
        self.metrics.num_requests_waiting = 0
        return out

    # ------------------------------------------------------------------ time
    def next_event_time(self) -> float:
        """When the engine next changes state on its own: ``now`` if a scheduler pass is due,
        the end of a coalesced decode stretch, or infinity when idle."""
        if not self.has_work:
            return INF
        st = self._stretch
        if st is None:
            st = self._plan_stretch()
            self._stretch = st
        return st[0]

    def advance(self, t: float) -> None:
        """Run every step that starts before ``t``."""
        while self.now < t and self.has_work:
            st = self._stretch
            if st is None:
                st = self._plan_stretch()
            end, k = st
            if k == 0:
                self._mixed_step()
                continue
            if end <= t:
                self._decode_steps(k)
                continue
            self._decode_steps(self._steps_starting_before(t, k))
        if not self.has_work and self.now < t:
            self.now = t

    def run_stretch(self) -> None:
        """Run the stretch that ``next_event_time()`` announced."""
        st = self._stretch if self._stretch is not None else self._plan_stretch()
        if st[1] == 0:
            self._mixed_step()
        else:
            self._decode_steps(st[1])

    # ------------------------------------------------------------------ planning
    def _plan_stretch(self) -> tuple[float, int]:
        """(end time, steps) of the next decode-only stretch, or (now, 0) for a scheduler pass."""
        running = self.running
        if not running:
            return (self.now, 0)
        left = INF
        context = 0
        for s in running:  # one pass: any prefill left, the first completion, the KV context
            c = s.computed
            if c < s.prompt:
                return (self.now, 0)
            r = s.target_out - s.out
            if r < left:  # noqa: PLR1730 (a call per sequence costs more in this loop)
                left = r
            context += c
        if self.num_waiting and self._can_admit_head():
            return (self.now, 0)
        k = self._kv_limited_steps(int(left) if self.coalesce else 1)
        if k == 0:
            return (self.now, 0)  # next step needs a preemption: let the scheduler do it
        n = len(running)
        alpha, beta = self.step.decode_affine(n)
        return (self.now + stretch_time(k, n, context + n, alpha, beta), k)

    def _steps_starting_before(self, t: float, k_max: int) -> int:
        """Steps of the current stretch that start before ``t`` (at least one)."""
        n = len(self.running)
        alpha, beta = self.step.decode_affine(n)
        k0 = sum(s.computed for s in self.running) + n
        dt = t - self.now
        # step j (0-based) starts at T(j); T(j) < dt  <=>  a·j² + b·j − dt < 0
        a = beta * n / 2
        b = alpha + beta * k0 - a
        root = (-b + math.sqrt(b * b + 4 * a * dt)) / (2 * a) if a > 0 else dt / b
        steps = max(1, min(k_max, math.ceil(root)))
        while steps > 1 and stretch_time(steps - 1, n, k0, alpha, beta) >= dt:
            steps -= 1
        while steps < k_max and stretch_time(steps, n, k0, alpha, beta) < dt:
            steps += 1
        return steps

    def _kv_limited_steps(self, k: int) -> int:
        """Largest k' ≤ k such that k' decode steps find the KV blocks they need."""
        bs = self.cfg.block_size
        avail = self.kv.available
        running = self.running
        # every running sequence holds the blocks of what it computed, so k steps need at most
        # ⌈k / bs⌉ more blocks each: when that fits, no sequence needs counting
        if len(running) * -(-k // bs) <= avail:
            return k

        def extra(steps: int) -> int:
            n = 0
            for s in running:
                e = -(-(s.computed + steps) // bs) - s.blocks
                if e > 0:
                    n += e
            return n

        if extra(k) <= avail:
            return k
        lo, hi = 0, k  # extra(lo) <= avail < extra(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if extra(mid) <= avail:
                lo = mid
            else:
                hi = mid
        return lo

    def _head(self) -> Seq:
        return self._prio[0][3] if self._prio else self.waiting[0]

    def _pop_head(self) -> Seq:
        return heapq.heappop(self._prio)[3] if self._prio else self.waiting.popleft()

    def _can_admit_head(self) -> bool:
        if len(self.running) >= self.cfg.max_num_seqs:
            return False
        head = self._head()
        budget = self.cfg.max_num_batched_tokens - len(self.running)
        if budget <= 0:
            return False
        start = self._admission_computed(head, touch=False)
        chunk = head.prompt - start
        if not self.cfg.enable_chunked_prefill and chunk > budget:
            return False
        chunk = min(chunk, budget)
        need = -(-(start + chunk) // self.cfg.block_size)
        return need <= self.kv.available

    def _admission_computed(self, seq: Seq, touch: bool) -> int:
        """Tokens already computed when ``seq`` is admitted: remote KV or prefix-cache hits."""
        if seq.remote_kv:
            return seq.prompt - 1
        keys = seq.prefix_keys
        if not keys or not self.cfg.enable_prefix_caching:
            return 0
        hit_blocks = self.kv.cached_prefix_blocks(keys)
        hit = min(hit_blocks * self.cfg.block_size, seq.prompt - 1)
        if touch and hit > 0:
            hit_blocks = hit // self.cfg.block_size
            hit = hit_blocks * self.cfg.block_size
            held = keys[:hit_blocks]
            self.kv.acquire_cached(held)
            seq.shared = list(held)
            seq.blocks = hit_blocks
        return hit

    # ------------------------------------------------------------------ steps
    def _alloc(self, seq: Seq, new_tokens: int) -> bool:
        """Give ``seq`` the blocks to hold ``computed + new_tokens`` tokens."""
        bs = self.cfg.block_size
        need = -(-(seq.computed + new_tokens) // bs) - seq.blocks
        if need <= 0:
            return True
        first = seq.blocks
        keys = seq.prefix_keys
        shared = keys[first : first + need]
        if not self.kv.allocate(need - len(shared), shared):
            return False
        if shared:
            seq.shared.extend(shared)
        seq.blocks += need
        return True

    def _free(self, seq: Seq) -> None:
        self.kv.release(seq.blocks - len(seq.shared), seq.shared)
        seq.blocks = 0
        seq.shared = []

    def _preempt(self, victim: Seq) -> None:
        self.running.remove(victim)
        self._free(victim)
        victim.prompt = victim.spec.input_tokens + victim.out
        victim.computed = 0
        victim.preemptions += 1
        self.metrics.num_preemptions += 1
        if self.cfg.scheduling_policy == "priority":
            heapq.heappush(self._prio, (-victim.spec.priority, victim.arrival, victim.rid, victim))
        else:
            self.waiting.appendleft(victim)

    def _victim(self) -> Seq:
        if self.cfg.scheduling_policy == "priority":
            return max(self.running, key=lambda s: (-s.spec.priority, s.arrival))
        return self.running[-1]

    def _mixed_step(self) -> None:
        """One full scheduler pass and the step it produces."""
        self._stretch = None
        cfg = self.cfg
        bs = cfg.block_size
        budget = cfg.max_num_batched_tokens
        running = self.running
        sched: list[tuple[Seq, int]] = []
        preempted = False
        i = 0
        while i < len(running) and budget > 0:
            seq = running[i]
            c = seq.computed
            if c < seq.prompt:
                n_new = min(seq.prompt - c, budget)
            elif c < seq.blocks * bs:  # decoding, and the next token fits the blocks held
                sched.append((seq, 1))
                budget -= 1
                i += 1
                continue
            else:
                n_new = 1
            while not self._alloc(seq, n_new):
                victim = self._victim()
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            else:
                sched.append((seq, n_new))
                budget -= n_new
                i += 1
                continue
            # seq itself was preempted; do not advance i (list shrank)
        metrics = self.metrics
        if not preempted:
            while self.num_waiting and budget > 0 and len(running) < cfg.max_num_seqs:
                head = self._head()
                first_time = head.computed == 0 and head.blocks == 0
                start = self._admission_computed(head, touch=False) if first_time else head.computed
                chunk = head.prompt - start
                if not cfg.enable_chunked_prefill and chunk > budget:
                    break
                chunk = min(chunk, budget)
                need = -(-(start + chunk) // bs)
                if need - (head.blocks if not first_time else 0) > self.kv.available:
                    break
                self._pop_head()
                if first_time:
                    hit = self._admission_computed(head, touch=True)
                    head.computed = hit
                    if not head.remote_kv:
                        metrics.prefix_cache_queries += head.prompt
                        metrics.prefix_cache_hits += hit
                        head.prefix_hit_tokens = hit
                if not self._alloc(head, chunk):  # cannot happen after the check; stay safe
                    self._free(head)
                    head.computed = 0
                    self.waiting.appendleft(head)
                    break
                if head.first_sched < 0:
                    head.first_sched = self.now
                running.append(head)
                sched.append((head, chunk))
                budget -= chunk
        if not sched:
            # Nothing fits (e.g. a prompt larger than the whole KV cache): fail the head.
            if self.num_waiting and not running:
                seq = self._pop_head()
                self._free(seq)
                seq.finish_reason = "abort"
                seq.finish_t = self.now
                metrics.request_success("abort")
                self.on_finish(seq)
            metrics.num_requests_waiting = self.num_waiting
            metrics.num_requests_running = len(running)
            return
        # one pass over the batch: what the step costs, and what each sequence gains from it
        p_tokens = 0
        p_attn = 0.0
        d_seqs = 0
        d_ctx = 0
        prompts_done: list[Seq] = []  # prompt complete: its first token, or after a preemption
        finished: list[Seq] = []
        for seq, n_new in sched:
            c = seq.computed
            if c >= seq.prompt:  # decoding: one token, one inter-token latency
                d_seqs += 1
                d_ctx += c + 1
                seq.computed = c + n_new
                seq.out += 1
                if seq.out >= seq.target_out:
                    finished.append(seq)
                continue
            p_tokens += n_new
            p_attn += n_new * (c + n_new / 2)
            seq.computed = c + n_new
            if seq.computed < seq.prompt:
                continue  # prefill chunk, no token yet
            seq.out += 1
            prompts_done.append(seq)
            if seq.out >= seq.target_out:
                finished.append(seq)
        dt = self.step.step_time(p_tokens, p_attn, d_seqs, d_ctx)
        end = self.now + dt
        self.now = end
        self.steps += 1
        completed_prompts = 0
        for seq in prompts_done:
            if seq.first_token_t < 0:
                seq.first_token_t = end
                completed_prompts += seq.spec.input_tokens
                metrics.time_to_first_token.observe(end - seq.arrival)
        if d_seqs:
            metrics.inter_token_latency.observe(dt, d_seqs)
        gen = d_seqs + len(prompts_done)
        # vLLM counts the whole prompt (cached tokens included) once, at the first token
        metrics.prompt_tokens += completed_prompts
        metrics.iteration_tokens.observe(completed_prompts + gen)
        metrics.generation_tokens += gen
        for seq in finished:
            self._finish(seq, end)
        metrics.num_requests_running = len(running)
        metrics.num_requests_waiting = self.num_waiting
        metrics.kv_cache_usage_perc = self.kv.usage

    def _decode_steps(self, k: int) -> None:
        """Run ``k`` decode-only steps analytically (the stretch was planned to allow them)."""
        self._stretch = None
        running = self.running
        n = len(running)
        alpha, beta = self.step.decode_affine(n)
        k0 = sum(s.computed for s in running) + n
        first = alpha + beta * k0
        end = self.now + stretch_time(k, n, k0, alpha, beta)
        metrics = self.metrics
        metrics.inter_token_latency.observe_arithmetic(first, beta * n, k, n)
        metrics.iteration_tokens.observe(n, k)
        metrics.generation_tokens += n * k
        bs = self.cfg.block_size
        finished: list[Seq] = []
        for s in running:
            need = -(-(s.computed + k) // bs) - s.blocks
            if need > 0:
                self._alloc(s, k)
            s.computed += k
            s.out += k
            if s.out >= s.target_out:
                finished.append(s)
        self.now = end
        self.steps += k
        for s in finished:
            self._finish(s, end)
        metrics.num_requests_running = len(running)
        metrics.num_requests_waiting = self.num_waiting
        metrics.kv_cache_usage_perc = self.kv.usage

    def _finish(self, seq: Seq, t: float) -> None:
        self.running.remove(seq)
        self._free(seq)
        seq.finish_t = t
        seq.finish_reason = "stop"
        self.metrics.record_finished_request(
            finish_reason="stop",
            arrival_s=seq.arrival,
            queued_s=seq.arrival,
            scheduled_s=seq.first_sched,
            first_token_s=seq.first_token_t,
            last_token_s=t,
            prompt_tokens=seq.spec.input_tokens,
            generation_tokens=seq.out,
        )
        self.on_finish(seq)
