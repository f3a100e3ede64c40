"""Greenlet ping-pong: two greenlets pass a counter back and forth, then ping returns to main."""
from greenlet import greenlet


def ping(rounds):
    for i in range(rounds):
        print("ping", i)
        i = pong_g.switch(i)
    return "ping-pong finished after %d rounds" % rounds


def pong(i):
    while True:
        print("pong", i)
        i = ping_g.switch(i + 1)


ping_g = greenlet(ping)
pong_g = greenlet(pong)
print(ping_g.switch(3))
