"""A simulation of 1,000 tasklets, checkpointed mid-run and resumed in another process.

    python simulation.py                      # runs to the end, prints the result
    python simulation.py --checkpoint FILE    # at round 10: pickles the whole run to FILE, kills itself
    python simulation.py --resume FILE        # a new process goes on from FILE, prints the same result

Each agent exchanges a value with its ring neighbours over channels every round and reports to
the coordinator (the main tasklet) over `clock`. The pickle holds every tasklet, suspended in the
middle of its loop, with the channels that link them.
"""
import os
import pickle
import signal
import sys

import stackless

AGENTS, ROUNDS, CHECKPOINT_ROUND = 1000, 20, 10
PRIME = 1_000_003


def agent(i, inbox, outbox, clock):
    value = i * 7919 % PRIME
    history = 0
    for r in range(ROUNDS):
        if i % 2 == 0:
            outbox.send(value)
            got = inbox.receive()
        else:
            got = inbox.receive()
            outbox.send(value)
        value = (value * 31 + got + r) % PRIME
        history = (history * 17 + value) % PRIME
        clock.send((i, value, history))


def start():
    clock = stackless.channel()
    inboxes = [stackless.channel() for _ in range(AGENTS)]
    agents = [stackless.tasklet(agent)(i, inboxes[i], inboxes[(i + 1) % AGENTS], clock)
              for i in range(AGENTS)]
    return {"round": 0, "clock": clock, "agents": agents, "report": [None] * AGENTS}


def run_queue():
    """The runnable tasklets in scheduling order (to re-insert them in the same order)."""
    main, order = stackless.getmain(), []
    t = main.next
    while t is not main:
        order.append(t)
        t = t.next
    return order


def simulate(sim, checkpoint=None):
    while sim["round"] < ROUNDS:
        for _ in range(AGENTS):
            i, value, history = sim["clock"].receive()
            sim["report"][i] = (value, history)
        sim["round"] += 1
        if checkpoint and sim["round"] == CHECKPOINT_ROUND:
            sim["queue"] = run_queue()
            for t in sim["queue"]:
                t.remove()
            with open(checkpoint, "wb") as f:
                pickle.dump(sim, f)
                f.flush()
                os.fsync(f.fileno())
            print("checkpoint after round", sim["round"], "written to", checkpoint, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    stackless.run()
    checksum = 0
    for value, history in sim["report"]:
        checksum = (checksum * 1_000_033 + value * PRIME + history) % (1 << 61)
    print("after %d rounds of %d tasklets: checksum %d" % (ROUNDS, AGENTS, checksum))
    print("alive:", sum(t.alive for t in sim["agents"]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--resume":
        with open(sys.argv[2], "rb") as f:
            sim = pickle.load(f)
        for t in sim.pop("queue"):
            t.insert()
        simulate(sim)
    else:
        simulate(start(), sys.argv[2] if len(sys.argv) == 3 and sys.argv[1] == "--checkpoint" else None)
