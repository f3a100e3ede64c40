"""Pickling of tasklets and channels.

Everything that needs no frames pickles here: unstarted tasklets (bound, with
arguments), finished tasklets, channels with their queues of blocked
tasklets, bombs. A tasklet suspended mid-run needs its frames: the two
functions `reduce_frames` and `restore_frames` are the single seam where
frame pickling plugs in; until then they refuse with a clear error.
"""


def restorable(task):
    """Whether unpickling `task` gives back a tasklet that can run on."""
    return not task._started or task._finished


def reduce_frames(task):
    """The picklable state of a suspended tasklet's frames."""
    raise RuntimeError(
        "cannot pickle %r: it is suspended mid-run and pickling its frames is not "
        "supported yet (only unstarted and finished tasklets pickle)" % (task,))


def restore_frames(task, frames):
    """Give `task` back the frames that `reduce_frames` produced."""
    raise RuntimeError("this stackless cannot restore the frames of a suspended tasklet")


def reduce_tasklet(task):
    if task is task._thread.current:
        raise RuntimeError("cannot pickle the current tasklet")
    if task is task._thread.main:
        raise RuntimeError("cannot pickle a main tasklet")
    frames = None if restorable(task) else reduce_frames(task)
    flags = (task.atomic, task.block_trap, task.ignore_nesting)
    state = (task.func, task._args, task._kwargs, task._finished, task.tempval,
             flags, task._blocked, frames)
    return type(task), (), state


def setstate_tasklet(task, state):
    """Restore a tasklet into the unpickling thread; it comes back paused
    (a channel's __setstate__ re-blocks those it held)."""
    (task.func, task._args, task._kwargs, finished, task.tempval,
     (task.atomic, task.block_trap, task.ignore_nesting), _blocked, frames) = state
    task._started = task._finished = finished
    if frames is not None:
        restore_frames(task, frames)


def reduce_channel(ch):
    flags = (ch.preference, ch.schedule_all, ch.closing)
    return type(ch), (), (ch.balance, flags, ch._waiting())


def setstate_channel(ch, state):
    from ._scheduler import lock
    balance, (ch.preference, ch.schedule_all, ch.closing), tasks = state
    direction = 1 if balance > 0 else -1
    with lock:
        for task in tasks:
            ch._queue.append(task)
            task._blocked, task._channel = direction, ch
            task._thread.nblocked += 1
        ch.balance = direction * len(tasks)
