"""Channels: synchronous rendezvous between tasklets, also across threads."""
import collections
import gc
from operator import attrgetter

from . import _pickling, _scheduler
from ._scheduler import _local, hooks, lock, state
from ._tasklet import bomb, class_bomb, make_bomb

CLOSED = "Send/receive operation on a closed channel"
BLOCK_TRAP = "this tasklet does not like to be blocked."
_acquire, _release = lock.acquire, lock.release


def _int_setting(name, convert, doc):
    """A channel attribute set from a bool or int (Stackless's check), stored converted in the
    slot `_<name>`, which the hot path reads."""
    slot = "_" + name

    def set_value(self, value):
        if not isinstance(value, int):
            raise TypeError(f"{name} must be set to a bool or integer")
        setattr(self, slot, convert(value))
    return property(attrgetter(slot), set_value, doc=doc)


class channel:
    """A channel: `send` blocks until a `receive` takes the value, and back.

    `balance` > 0 counts blocked senders, < 0 blocked receivers. `preference`
    decides who runs on when both sides meet: -1 the receiver (default),
    1 the sender, 0 neither (the caller continues); `schedule_all` makes the
    caller always go to the end of the run queue instead.
    """

    __slots__ = ("_queue", "_balance", "_preference", "_schedule_all", "_closing",
                 "__dict__", "__weakref__")

    def __init__(self):
        self._queue = collections.deque()   # blocked tasklets, all sending or all receiving
        self._balance = 0
        self._preference = -1
        self._schedule_all = False
        self._closing = False

    # Stackless's attribute rules: `balance` and `closing` are read-only (close()/open()
    # change the latter), `preference` is clamped to -1/0/1. The hot path reads the slots.
    balance = property(lambda self: self._balance, doc="blocked senders (> 0) or receivers (< 0)")
    closing = property(lambda self: self._closing, doc="close() was called (and not open())")

    preference = _int_setting("preference", lambda v: 1 if v > 0 else -1 if v < 0 else 0,
                              "who runs on when sender and receiver meet: -1, 0 or 1")
    schedule_all = _int_setting("schedule_all", bool, "the caller always goes to the end of the run queue")

    @property
    def closed(self):
        return self._closing and self._balance == 0

    @property
    def queue(self):
        """The first blocked tasklet (walk on with `.next`), or None."""
        q = self._queue
        return q[0] if q else None

    def _waiting(self):
        with lock:
            return list(self._queue)

    def close(self):
        """No more blocking on this channel; it is `closed` once empty."""
        self._closing = True

    def open(self):
        self._closing = False

    def _remove(self, task):
        """Take blocked `task` off this channel (kill, throw, deadlock)."""
        with lock:
            self._remove_locked(task)

    def _remove_locked(self, task):
        if task._channel is self:
            self._queue.remove(task)
            self._balance -= task._blocked
            task._channel = None
            task._thread.nblocked -= 1

    # send() and receive() are the hot path: each is written out in full, and holds the
    # lock (only taken once a second thread uses stackless) just while it reads and
    # changes the queue, calling no Python code there but the trap check.
    def send(self, value):
        """Send `value`; blocks until a receiver takes it."""
        try:
            s = _local.s
        except AttributeError:
            s = state()
        cur = s.current
        if hooks.channel is not None:
            hooks.channel(self, cur, True, self._balance >= 0)
        s.busy = True
        shared = not s.solo
        if shared:
            _acquire()
        try:
            if self._balance >= 0:
                if self._closing:
                    raise ValueError(CLOSED)
                if cur.block_trap:
                    raise RuntimeError(BLOCK_TRAP)
                if s.trap:
                    s.check_trap()
                self._queue.append(cur)
                self._balance += 1
                cur._channel = self
                s.nblocked += 1
                partner = None
            else:
                partner = self._queue[0]
                if s.trap and partner._thread is s and (self._schedule_all or self._preference < 0):
                    s.check_trap()
                self._queue.popleft()
                self._balance += 1
                partner._channel = None
                partner._thread.nblocked -= 1
        finally:
            if shared:
                _release()
            s.busy = False
        if partner is None:
            cur.tempval = value
            try:
                queue = s.queue
                if queue and not s.incoming:
                    task = queue.pop()
                    task._queued = False
                else:
                    task = s.runnable_after(cur)
                s.switch(cur, task)
            except BaseException:
                # Raised before it was taken (deadlock, an interrupt while waiting for another
                # thread, a failing callback): leave the channel as it was. Once taken, it is
                # off the channel already.
                self._remove(cur)
                raise
        else:
            partner.tempval = value
            if partner._thread is s and self._preference >= 0 and not self._schedule_all:
                s.queue.push(partner)       # the common case of _hand_over, inline
                partner._queued = True
            else:
                self._hand_over(s, cur, partner, self._preference < 0)

    def receive(self):
        """Receive a value; blocks until a sender offers one."""
        try:
            s = _local.s
        except AttributeError:
            s = state()
        cur = s.current
        if hooks.channel is not None:
            hooks.channel(self, cur, False, self._balance <= 0)
        s.busy = True
        shared = not s.solo
        if shared:
            _acquire()
        try:
            if self._balance <= 0:
                if self._closing:
                    raise ValueError(CLOSED)
                if cur.block_trap:
                    raise RuntimeError(BLOCK_TRAP)
                if s.trap:
                    s.check_trap()
                self._queue.append(cur)
                self._balance -= 1
                cur._channel = self
                s.nblocked += 1
                partner = None
            else:
                partner = self._queue[0]
                if s.trap and partner._thread is s and (self._schedule_all or self._preference > 0):
                    s.check_trap()
                self._queue.popleft()
                self._balance -= 1
                partner._channel = None
                partner._thread.nblocked -= 1
        finally:
            if shared:
                _release()
            s.busy = False
        if partner is None:
            try:
                queue = s.queue
                if queue and not s.incoming:
                    task = queue.pop()
                    task._queued = False
                else:
                    task = s.runnable_after(cur)
                value = s.switch(cur, task)
            except BaseException:
                self._remove(cur)   # as in send()
                raise
        else:
            value = partner.tempval
            partner.tempval = None
            if partner._thread is s and self._preference <= 0 and not self._schedule_all:
                s.queue.push(partner)       # the common case of _hand_over, inline
                partner._queued = True
            else:
                self._hand_over(s, cur, partner, self._preference > 0)
        if value is not None and isinstance(value, bomb):
            value.raise_()
        return value

    def _hand_over(self, s, cur, partner, partner_first):
        """`partner` was woken by `cur`: queue it, or run it now if preferred."""
        if partner._thread is not s:
            partner._thread.push_remote(partner)
        elif self._schedule_all:
            s.enqueue(partner)
            s.enqueue(cur)
            s.switch(cur, s.pop())
        elif partner_first:
            s.queue.push(cur)
            cur._queued = True
            s.switch(cur, partner)
        else:
            s.queue.push(partner)
            partner._queued = True

    def send_exception(self, exc_class, *args):
        """The receiver raises `exc_class(*args)`."""
        channel.send(self, class_bomb(exc_class, args, "channel.send_exception"))

    def send_throw(self, exc, val=None, tb=None):
        """The receiver raises like `raise exc` (keeping `tb`)."""
        channel.send(self, make_bomb(exc, val, tb))

    def send_sequence(self, seq):
        """Send every item of `seq`; returns how many were sent."""
        count = 0
        for item in seq:
            channel.send(self, item)
            count += 1
        return count

    def __iter__(self):
        return self

    def __next__(self):
        """Receive; stops when the channel is closed or a StopIteration arrives."""
        if self.closed:
            raise StopIteration
        try:
            return channel.receive(self)
        except ValueError:
            if self.closed:
                raise StopIteration from None
            raise

    def __reduce__(self):
        return _pickling.reduce_channel(self)

    def __setstate__(self, state_):
        _pickling.setstate_channel(self, state_)

    def __repr__(self):
        return "<%s.%s balance=%d%s at %#x>" % (
            type(self).__module__, type(self).__qualname__, self._balance,
            " closed" if self.closed else " closing" if self._closing else "", id(self))


def _release_blocked(s):
    """`s`'s thread ended with tasklets blocked on channels: they can never take or give a
    value again, so they leave their channels (a value sent to one would be lost). Found by a
    scan of the heap: rare, and no channel operation pays for it."""
    for ch in gc.get_objects():
        if isinstance(ch, channel) and ch._queue:
            with lock:
                for task in [t for t in ch._queue if t._thread is s]:
                    ch._remove_locked(task)


_scheduler.release_blocked = _release_blocked
