"""Retrieval dynamics of a binary memory with couplings J (N, N), J_ii = 0.

* Zero temperature (eq. 6): s_i <- sign(h_i), h_i = sum_j J_ij s_j, i.e. the most probable value
  under the conditional p(s_i | s_-i) of eq. (9). A tie h_i = 0 keeps the current s_i.
  - synchronous: all sites at once. J is not symmetric in general, so there is no Lyapunov energy
    and a run can end on a cycle; cycles are detected exactly by comparing with every earlier
    state of the run.
  - asynchronous: one site at a time, in a fresh random order each sweep; a run has converged
    when a whole sweep changes nothing (then the state is a fixed point of eq. 6).
* Finite temperature: Glauber sampling, s_i = +1 with probability sigma(2 beta h_i).

Every function is vectorised over a batch of B states (B, N). In the asynchronous and Glauber
updates all rows of the batch share the site order of a sweep: each row is still a valid
random-order trajectory, the rows are merely not independent in their order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attractor.errors import require
from attractor.memories.binary.patterns import STATE_DTYPE

RULES = ("sync", "async")


@dataclass(frozen=True)
class DynamicsResult:
    """Final states and how each run ended.

    states: (B, N) float32 final states. period: (B,) int64, 1 for a fixed point, k >= 2 for a
    cycle of length k (synchronous only), 0 if neither was reached within the step budget.
    steps: (B,) int64, synchronous steps or asynchronous sweeps until the run settled (or the
    budget).
    """

    states: np.ndarray
    period: np.ndarray
    steps: np.ndarray


def _zero_temperature(fields: np.ndarray, states: np.ndarray) -> np.ndarray:
    """sign(h) with ties keeping the current state (eq. 6)."""
    new = np.sign(fields).astype(STATE_DTYPE, copy=False)
    ties = new == 0
    if ties.any():
        new[ties] = states[ties]
    return new


def synchronous(couplings: np.ndarray, states: np.ndarray, max_steps: int = 30) -> DynamicsResult:
    """Parallel zero-temperature updates s <- sign(s J^T), with exact cycle detection."""
    current = np.asarray(states, dtype=STATE_DTYPE).copy()
    batch = current.shape[0]
    period = np.zeros(batch, dtype=np.int64)
    steps = np.full(batch, max_steps, dtype=np.int64)
    history = [np.packbits(current > 0, axis=1)]  # packed states, one (B, N/8) array per step
    active = np.arange(batch)
    for step in range(1, max_steps + 1):
        if active.size == 0:
            break
        current[active] = _zero_temperature(current[active] @ couplings.T, current[active])
        packed = np.packbits(current[active] > 0, axis=1)
        found = np.zeros(active.size, dtype=np.int64)
        # A return to the state of k steps ago means a cycle of length k (k = 1: fixed point).
        for lag in range(1, step + 1):
            previous = history[step - lag][active]
            hit = (found == 0) & np.all(packed == previous, axis=1)
            found[hit] = lag
        history.append(np.packbits(current > 0, axis=1))
        settled = found > 0
        period[active[settled]] = found[settled]
        steps[active[settled]] = step
        active = active[~settled]
    return DynamicsResult(states=current, period=period, steps=steps)


def asynchronous(
    couplings: np.ndarray,
    states: np.ndarray,
    rng: np.random.Generator,
    max_sweeps: int = 100,
) -> DynamicsResult:
    """Random-order sequential zero-temperature updates until a sweep changes nothing."""
    current = np.asarray(states, dtype=STATE_DTYPE).copy()
    batch, n = current.shape
    period = np.zeros(batch, dtype=np.int64)
    steps = np.full(batch, max_sweeps, dtype=np.int64)
    active = np.arange(batch)
    for sweep in range(1, max_sweeps + 1):
        if active.size == 0:
            break
        block = current[active]
        changed = np.zeros(active.size, dtype=bool)
        for i in rng.permutation(n):
            new = _zero_temperature(block @ couplings[i], block[:, i])
            changed |= new != block[:, i]
            block[:, i] = new
        current[active] = block
        settled = ~changed
        period[active[settled]] = 1
        steps[active[settled]] = sweep
        active = active[changed]
    return DynamicsResult(states=current, period=period, steps=steps)


def glauber(
    couplings: np.ndarray,
    states: np.ndarray,
    beta: float,
    n_sweeps: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Finite-temperature sampling: n_sweeps random-order sweeps of s_i ~ p(s_i | s_-i) (eq. 9).

    Returns the (B, N) float32 states after the last sweep. For symmetric J this chain has the
    Boltzmann distribution p(s) ~ exp(beta s^T J s / 2) as its stationary law.
    """
    require(beta > 0, f"beta must be > 0, got {beta}")
    current = np.asarray(states, dtype=STATE_DTYPE).copy()
    batch, n = current.shape
    for _ in range(n_sweeps):
        for i in rng.permutation(n):
            fields = current @ couplings[i]  # (B,)
            p_up = 0.5 * (1.0 + np.tanh(beta * fields))  # sigma(2 beta h)
            current[:, i] = np.where(rng.random(batch) < p_up, 1.0, -1.0)
    return current


def run_dynamics(
    couplings: np.ndarray,
    states: np.ndarray,
    rule: str,
    rng: np.random.Generator,
    max_steps: int = 30,
) -> DynamicsResult:
    """Zero-temperature retrieval with ``rule`` in RULES; max_steps counts steps or sweeps."""
    require(rule in RULES, f"dynamics must be one of {', '.join(RULES)}, not {rule!r}")
    require(max_steps >= 1, f"the step budget must be >= 1, got {max_steps}")
    if rule == "sync":
        return synchronous(couplings, states, max_steps)
    return asynchronous(couplings, states, rng, max_steps)
