"""Cooperative worker processes for the simulator: real interleavings, still deterministic.

A :class:`ProcessScheduler` runs *tasks* (one poll of one worker process, one process's
heartbeat) as greenlets on ONE thread. A task runs until it reaches a **yield point**, then the
scheduler picks the next task to run with its seeded ``random.Random``:

* :meth:`ProcessScheduler.pause` -- a point where a real process would be preempted or wait on
  the network: before every AWS call and every store call of a process (:class:`Yielding` wraps
  its clients and its store) and at every named fault point of the listener (handler steps);
* :meth:`ProcessScheduler.sleep` -- the process is busy or waiting for ``seconds`` of virtual time
  (a slow handler, a stall, the heartbeat's period): other tasks run meanwhile; the task is
  runnable again once the clock has reached its wake time.

Nothing runs by itself: the driver (the main greenlet, :mod:`flowgate.harness.simulation`) calls
:meth:`run` to let tasks progress (a number of steps: tasks stay suspended mid-way between the
driver's calls, while time passes and other tasks start), and moves time with the
:class:`ProcessClock`, which stops at every wake time on the way and runs the tasks whose sleep
ends then until they sleep again (:meth:`wake_due`) -- so a time jump never skips a heartbeat
beat or the end of a slow handler. The same seed and the same driver calls give the same
interleaving: the only choices are ``rng.choice`` over the runnable tasks in spawn order.

Outside any task (the driver, the harness's own clients) a yield point does nothing and
:meth:`sleep` advances the clock, so code shared by both modes needs no ``if``.

A task can be killed (:meth:`ProcessScheduler.kill`: a process killed mid-way, ``SIGKILL``): its
greenlet is unwound with ``GreenletExit`` and its yield points are no-ops while it unwinds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import greenlet

from .clock import VirtualClock

#: a run without a step budget that makes this many steps is a livelock (a bug)
_MAX_STEPS = 1_000_000

__all__ = ["ProcessClock", "ProcessScheduler", "Task", "Yielding"]


class Task:
    """One task: a callable run on its own greenlet until it returns or raises."""

    __slots__ = ("_glet", "background", "done", "error", "killed", "name", "result", "wake_at")

    def __init__(self, name: str, fn: Callable[[], Any], *, background: bool) -> None:
        self.name = name
        #: a helper task of a process (its listener's heartbeat), not one of its polls
        self.background = background
        self.wake_at = 0.0
        self.done = False
        self.killed = False
        self.result: Any = None
        self.error: BaseException | None = None
        self._glet = greenlet.greenlet(fn)

    def __repr__(self) -> str:
        state = "done" if self.done else f"wake_at={self.wake_at!r}"
        return f"Task({self.name!r}, {state})"


class ProcessScheduler:
    """Deterministic cooperative scheduler of :class:`Task` s (module docstring)."""

    def __init__(self, clock: VirtualClock, rng: random.Random) -> None:
        self.clock = clock
        self.rng = rng
        self.tasks: list[Task] = []
        self._current: Task | None = None
        self._driver: Any = None
        #: task switches so far (a statistic)
        self.switches = 0

    @property
    def current(self) -> Task | None:
        """The task running now; None in the driver."""
        return self._current

    def spawn(self, name: str, fn: Callable[[], Any], *, background: bool = False) -> Task:
        """A new task, runnable now (it first runs when :meth:`run` picks it)."""
        task = Task(name, fn, background=background)
        task.wake_at = self.clock.now()
        self.tasks.append(task)
        return task

    # -- inside a task ----------------------------------------------------------------------
    def pause(self) -> None:
        """A yield point: let the scheduler run another task (or this one again) now."""
        task = self._current
        if task is None or task.killed:
            return
        task.wake_at = self.clock.now()
        self._switch_out()

    def sleep(self, seconds: float) -> None:
        """Inside a task: sleep ``seconds`` of virtual time while the other tasks run.
        In the driver: advance the clock."""
        task = self._current
        if task is None:
            self.clock.advance(max(0.0, seconds))
            return
        if task.killed:
            return
        task.wake_at = self.clock.now() + max(0.0, seconds)
        self._switch_out()

    def _switch_out(self) -> None:
        self._driver.switch()

    def kill(self, task: Task) -> None:
        """Kill ``task`` (a process killed mid-way): its greenlet is unwound with ``GreenletExit``
        (now, or by the driver's next step when called from a task); its yield points do nothing
        meanwhile, so the unwinding makes no call that could yield."""
        if task.done:
            return
        task.killed = True
        task.wake_at = float("-inf")  # unwound first
        if self._current is None:
            self.step(task)

    # -- the driver -------------------------------------------------------------------------
    def runnable(self) -> list[Task]:
        now = self.clock.now()
        return [t for t in self.tasks if not t.done and t.wake_at <= now]

    def next_wake(self, after: float | None = None) -> float | None:
        """The earliest wake time of a live task (later than ``after`` if given; None: none)."""
        times = [t.wake_at for t in self.tasks if not t.done and (after is None or t.wake_at > after)]
        return min(times) if times else None

    def run(
        self, until: Task | None = None, *, steps: int | None = None, only: list[Task] | None = None
    ) -> None:
        """Run runnable tasks (of ``only``, if given), each step one chosen by the RNG, until
        ``until`` is done, ``steps`` steps were made, or nothing is runnable. Time does not move
        here; the tasks not run stay where they are."""
        assert self._current is None, "run() is called by the driver, not from a task"
        limit = steps if steps is not None else _MAX_STEPS
        for _ in range(limit):
            if until is not None and until.done:
                return
            now = self.clock.now()
            pool = self.tasks if only is None else only
            ready = [t for t in pool if not t.done and t.wake_at <= now]
            if not ready:
                return
            self.step(ready[0] if len(ready) == 1 else self.rng.choice(ready))
        if steps is None:
            raise RuntimeError(f"process scheduler: no progress after {limit} steps")

    def step(self, task: Task) -> None:
        """Run ``task`` up to its next yield point (or its end)."""
        glet = task._glet
        self._driver = greenlet.getcurrent()
        glet.parent = self._driver  # a task's end returns here, whoever spawned it
        self._current = task
        self.switches += 1
        try:
            if not task.killed:
                task.result = glet.switch()
            elif glet:  # started and suspended: unwind it
                glet.throw(greenlet.GreenletExit)
        except BaseException as exc:  # the task's own business: kept for whoever awaits it
            task.error = exc
        finally:
            self._current = None
        if glet.dead or task.killed:
            task.done = True
            self.tasks.remove(task)

    def wake_due(self, now: float) -> None:
        """The tasks whose sleep ends at ``now`` run (interleaved among themselves) until each
        sleeps again or ends -- a heartbeat beats, a slow handler goes on; tasks stopped at a
        yield point stay there."""
        woken = [t for t in self.tasks if not t.done and t.wake_at == now]
        if woken:
            self.run(only=woken)

    def settle(self, *, max_rounds: int = 100_000) -> None:
        """Run every task to its end, moving the clock to the next wake time when all sleep."""
        for _ in range(max_rounds):
            self.run()
            wake = self.next_wake()
            if wake is None:
                return
            self.clock.advance_to(wake)
        raise RuntimeError("process scheduler: tasks did not settle")


class ProcessClock(VirtualClock):
    """A :class:`VirtualClock` that knows the scheduler's sleeping tasks.

    In the driver, :meth:`advance` / :meth:`advance_to` stop at each wake time on the way and run
    the tasks due then (so a jump of the driver's clock cannot skip a heartbeat beat). Inside a
    task, :meth:`sleep`, :meth:`advance` and :meth:`advance_to` are that task's sleep (the process
    waits; time passes for everybody only when the driver moves it)."""

    __slots__ = ("scheduler",)

    def __init__(self, start: float | None = None) -> None:
        if start is None:
            super().__init__()
        else:
            super().__init__(start)
        self.scheduler: ProcessScheduler | None = None

    def _task_sleep(self, until: float) -> bool:
        sched = self.scheduler
        if sched is None or sched.current is None:
            return False
        sched.sleep(until - self.now())
        return True

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._task_sleep(self.now() + seconds):
            self.advance_to(self.now() + seconds)

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"virtual time cannot go backwards (advance({seconds!r}))")
        return self.advance_to(self.now() + seconds)

    def advance_to(self, when: float) -> float:
        if self._task_sleep(when):
            return self.now()
        sched = self.scheduler
        while sched is not None:
            wake = sched.next_wake(after=self.now())
            if wake is None or wake > when:
                break
            super().advance_to(wake)
            sched.wake_due(wake)
        return super().advance_to(when)


class Yielding:
    """A process's view of a client or a store: every public method call is a yield point of
    the calling task first (:meth:`ProcessScheduler.pause`), then the call itself, atomic.
    Attributes that are not methods are passed through; ``unwrap`` is the object itself."""

    def __init__(self, target: Any, scheduler: ProcessScheduler) -> None:
        object.__setattr__(self, "unwrap", target)
        object.__setattr__(self, "_sched", scheduler)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.unwrap, name)
        if name.startswith("_") or not callable(attr) or isinstance(attr, type):
            return attr
        pause = self._sched.pause

        def call(*args: Any, **kwargs: Any) -> Any:
            pause()
            return attr(*args, **kwargs)

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.unwrap, name, value)

    def __repr__(self) -> str:
        return f"Yielding({self.unwrap!r})"
