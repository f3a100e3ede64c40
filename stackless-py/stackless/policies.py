"""Run-queue policies: which runnable tasklet runs next.

A policy holds the runnable tasklets of one thread, except the current one,
and is installed with `stackless.set_run_queue(policy)`. The scheduler uses
only this interface:

    push(task)        task became runnable
    push_next(task)   task was interrupted by tasklet.run(): it should run soon
    pop()             remove and return the next tasklet (only called when len() > 0)
    remove(task)      task leaves the queue (it is in it)
    task in policy, iter(policy) (in run order), len(policy)
"""
import collections
import heapq
import itertools


class RoundRobin(collections.deque):
    """First in, first out: Stackless's default order (a deque: all in C)."""

    push = collections.deque.append
    push_next = collections.deque.appendleft     # resumes next (tasklet.run's caller)
    pop = collections.deque.popleft


class _Heap:
    """A heap ordered by `key(task)`, FIFO among equal keys."""

    def key(self, task):
        raise NotImplementedError

    def __init__(self):
        self._heap = []
        self._members = set()
        self._order = itertools.count()

    def push(self, task):
        heapq.heappush(self._heap, (self.key(task), next(self._order), task))
        self._members.add(task)

    push_next = push

    def pop(self):
        while True:
            task = heapq.heappop(self._heap)[2]
            if task in self._members:
                self._members.discard(task)
                return task

    def remove(self, task):
        self._members.remove(task)
        self._heap = [e for e in self._heap if e[2] is not task]
        heapq.heapify(self._heap)

    def __contains__(self, task):
        return task in self._members

    def __iter__(self):
        return iter([e[2] for e in sorted(self._heap) if e[2] in self._members])

    def __len__(self):
        return len(self._members)


class Priority(_Heap):
    """Highest `task.priority` first (default 0); round-robin within a level."""

    def key(self, task):
        return -getattr(task, "priority", 0)


class Deadline(_Heap):
    """Earliest `task.deadline` first (any comparable number; none = last)."""

    def key(self, task):
        deadline = getattr(task, "deadline", None)
        return (deadline is None, deadline or 0)
