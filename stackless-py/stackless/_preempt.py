"""Preemption for `run(timeout)`: a trace function counts, the scheduler switches.

Stackless counts bytecode instructions; here the unit is a trace "line" event
(each new source line and each backward jump), which every CPython from 3.9
to 3.13 reports the same way. The trace function exists only while a
`run(timeout)` is active, so code run without a timeout pays nothing.

A trace function must not switch by itself: CPython marks the thread as
"inside a trace function" until it returns, and that mark would follow the
switch. `sys.call_tracing` clears the mark for the duration of a call, so the
switch happens inside it and the mark comes back when the tasklet resumes.
"""
import sys

import _continuation

_PACKAGE = __package__
_HAS_TEALET = hasattr(_continuation, "get_frame")


class Preemption:
    def __init__(self, s, watchdog, timeout, soft, total):
        self.s, self.watchdog = s, watchdog
        self.timeout, self.soft, self.total = timeout, soft, total
        self.ticks = 0
        self.last = None
        self.stop = False
        self.old = None

    def install(self):
        self.old = sys.gettrace()
        self.s.preempt = self
        self.s.update_plain()
        sys.settrace(self.trace)
        for task in self.s.queue:
            self.entering(task)

    def uninstall(self):
        self.s.preempt = None
        self.s.update_plain()
        sys.settrace(self.old)

    def trace(self, frame, event, arg):
        if self.s.preempt is not self:      # a local trace left by an earlier run
            active = self.s.preempt
            return None if active is None else active.trace(frame, event, arg)
        if frame.f_globals.get("__package__") == _PACKAGE:
            return None     # our own code is never interrupted
        if event == "line":
            s = self.s
            cur = s.current
            if cur is self.watchdog.task:
                return self.trace
            if cur is not self.last:
                self.last = cur
                if not self.total:
                    self.ticks = 0
            self.ticks += 1
            if self.ticks >= self.timeout and not cur.atomic and not self.stop \
                    and self._interruptible(frame):
                if self.soft:
                    self.stop = True
                else:
                    sys.call_tracing(self._interrupt, (cur,))
        return self.trace

    def _interruptible(self, frame):
        """Not while our scheduler code is below (e.g. inside a callback)."""
        boot = _bootstrap_code()
        while frame is not None and frame.f_code is not boot:
            if frame.f_globals.get("__package__") == _PACKAGE:
                return False
            frame = frame.f_back
        return True

    def _interrupt(self, cur):
        """Take `cur` out of the run queue and give control back to run()."""
        self.ticks = 0
        self.watchdog.interrupted = cur
        self.s.switch(cur, self.watchdog.task)

    def entering(self, task):
        """`task` is about to run: trace the frames it already has."""
        if not _HAS_TEALET or task._cont is None or task is self.s.main:
            return
        frame = _continuation.get_frame(task._cont)
        boot = _bootstrap_code()
        while frame is not None and frame.f_code is not boot:
            if frame.f_globals.get("__package__") != _PACKAGE:
                frame.f_trace = self.trace
            frame = frame.f_back

    def soft_stop(self, cur, target):
        """A soft timeout passed: the next switch goes back to run() instead."""
        wd = self.watchdog.task
        if target is wd or cur is wd:
            return target
        self.watchdog.stopped = True
        if target is not cur:
            self.s.queue.push_next(target)
            target._queued = True
        return wd


def _bootstrap_code():
    from ._tasklet import _bootstrap
    return _bootstrap.__code__
