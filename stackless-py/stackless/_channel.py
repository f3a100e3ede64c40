"""Channels: synchronous rendezvous between tasklets, also across threads."""
import collections

from . import _pickling
from ._scheduler import _local, hooks, lock, state
from ._tasklet import bomb, make_bomb

CLOSED = "Send/receive operation on a closed channel"


class channel:
    """A channel: `send` blocks until a `receive` takes the value, and back.

    `balance` > 0 counts blocked senders, < 0 blocked receivers. `preference`
    decides who runs on when both sides meet: -1 the receiver (default),
    1 the sender, 0 neither (the caller continues); `schedule_all` makes the
    caller always go to the end of the run queue instead.
    """

    __slots__ = ("_queue", "balance", "preference", "schedule_all", "closing",
                 "__dict__", "__weakref__")

    def __init__(self):
        self._queue = collections.deque()   # blocked tasklets, all sending or all receiving
        self.balance = 0
        self.preference = -1
        self.schedule_all = False
        self.closing = False

    @property
    def closed(self):
        return self.closing and self.balance == 0

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
        self.closing = True

    def open(self):
        self.closing = False

    def _remove(self, task):
        """Take blocked `task` off this channel (kill, throw, deadlock)."""
        with lock:
            if task._channel is self:
                self._queue.remove(task)
                self.balance -= task._blocked
                task._blocked, task._channel = 0, None
                task._thread.nblocked -= 1

    def _action(self, direction, value):
        """Send `value` (direction 1) or receive (-1); returns what was received."""
        try:
            s = _local.s
        except AttributeError:
            s = state()
        cur = s.current
        cb = hooks.channel
        if cb is not None:
            cb(self, cur, direction > 0, self.balance * direction >= 0)
        with lock:
            if self.balance * direction < 0:
                partner = self._queue[0]
                local = partner._thread is s
                if s.trap and local and (self.schedule_all or self.preference == -direction):
                    s.check_trap()
                self._queue.popleft()
                self.balance += direction
                partner._blocked, partner._channel = 0, None
                partner._thread.nblocked -= 1
            else:
                if self.closing:
                    raise ValueError(CLOSED)
                if cur.block_trap:
                    raise RuntimeError("this tasklet does not like to be blocked.")
                if s.trap:
                    s.check_trap()
                self._queue.append(cur)
                self.balance += direction
                cur._blocked, cur._channel = direction, self
                s.nblocked += 1
                partner = None
        if partner is None:
            cur.tempval = value
            try:
                return s.block(cur)
            except RuntimeError:
                self._remove(cur)   # deadlock: leave the channel as it was
                raise
        if direction > 0:
            partner.tempval = value
            value = None
        else:
            value, partner.tempval = partner.tempval, None
        if not local:
            partner._thread.push_remote(partner)
        elif self.schedule_all:
            s.enqueue(partner)
            s.enqueue(cur)
            s.switch(cur, s.pop())
        elif self.preference == -direction:
            s.queue.push(cur)
            cur._queued = True
            s.switch(cur, partner)
        else:
            s.queue.push(partner)
            partner._queued = True
        if value is not None and isinstance(value, bomb):
            value.raise_()
        return value

    def send(self, value):
        """Send `value`; blocks until a receiver takes it."""
        self._action(1, value)

    def receive(self):
        """Receive a value; blocks until a sender offers one."""
        return self._action(-1, None)

    def send_exception(self, exc_class, *args):
        """The receiver raises `exc_class(*args)`."""
        self._action(1, bomb(exc_class, exc_class(*args)))

    def send_throw(self, exc, val=None, tb=None):
        """The receiver raises like `raise exc` (keeping `tb`)."""
        self._action(1, make_bomb(exc, val, tb))

    def send_sequence(self, seq):
        """Send every item of `seq`; returns how many were sent."""
        count = 0
        for item in seq:
            self._action(1, item)
            count += 1
        return count

    def __iter__(self):
        return self

    def __next__(self):
        """Receive; stops when the channel is closed or a StopIteration arrives."""
        if self.closed:
            raise StopIteration
        try:
            return self._action(-1, None)
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
            type(self).__module__, type(self).__qualname__, self.balance,
            " closed" if self.closed else " closing" if self.closing else "", id(self))
