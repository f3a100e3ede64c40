"""Real libraries that build on greenlet's Python API, run unchanged on the greenlet installed:
SQLAlchemy's asyncio bridge (sqlalchemy.ext.asyncio runs sync ORM code in a greenlet and awaits
through greenlet.switch) and eventlet (a hub greenlet, green sockets, monkey patching).

The pinned versions are in requirements-libraries.txt (ci/test-greenlet.sh installs them); the
same file runs against C greenlet in the greenlet-bench venvs, so every result asserted here is
C greenlet's too. eventlet's programs (eventlet_programs.py) run in child processes: its hub and
monkey patching are per process.
"""
import asyncio
import contextvars
import json
import os
import subprocess
import sys
import traceback

import pytest
from sqlalchemy import ForeignKey, String, event, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload
from sqlalchemy.util import await_only, greenlet_spawn

import greenlet

OWN_SOURCE = os.path.dirname(greenlet.__file__)


def frames_of_greenlet(tb):
    """Traceback entries in the greenlet package's own source: C greenlet has none."""
    return [f.name for f in traceback.extract_tb(tb) if f.filename.startswith(OWN_SOURCE)]


# -- SQLAlchemy asyncio ----------------------------------------------------------------------


request_id = contextvars.ContextVar("request_id", default=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30), unique=True)
    posts: Mapped[list["Post"]] = relationship(back_populates="user", order_by="Post.id")


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str]
    user: Mapped[User] = relationship(back_populates="posts")


def run_db(tmp_path, body):
    """Runs `body(engine, Session)` on a fresh file database in a new event loop."""
    async def main():
        engine = create_async_engine("sqlite+aiosqlite:///%s" % (tmp_path / "db.sqlite"))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            async with async_sessionmaker(engine, expire_on_commit=False)() as s:
                s.add_all([User(name="ann", posts=[Post(title="p1"), Post(title="p2")]),
                           User(name="bob")])
                await s.commit()
            return await body(engine, async_sessionmaker(engine, expire_on_commit=False))
        finally:
            await engine.dispose()
    return asyncio.run(main())


def test_sqlalchemy_orm_add_commit_query(tmp_path):
    async def body(engine, Session):
        async with Session() as s:
            s.add(Post(title="p3", user=await s.scalar(select(User).where(User.name == "bob"))))
            await s.commit()
        async with Session() as s:
            users = (await s.scalars(select(User).options(selectinload(User.posts))
                                     .order_by(User.id))).all()
            count = await s.scalar(select(func.count()).select_from(Post))
            return [(u.name, [p.title for p in u.posts]) for u in users], count

    assert run_db(tmp_path, body) == ([("ann", ["p1", "p2"]), ("bob", ["p3"])], 3)


def test_sqlalchemy_run_sync_lazy_loads_and_sees_the_tasks_context(tmp_path):
    def sync_part(session):
        # Sync ORM code: each lazy load awaits the driver through greenlet.switch.
        user = session.execute(select(User).where(User.name == "ann")).scalar_one()
        g = greenlet.getcurrent()
        return request_id.get(), [p.title for p in user.posts], g.parent is not None, g.gr_context

    async def body(engine, Session):
        request_id.set("req-1")
        async with Session() as s:
            rid, titles, in_child, ctx = await s.run_sync(sync_part)
        return rid, titles, in_child, ctx is not None and ctx.get(request_id)

    assert run_db(tmp_path, body) == ("req-1", ["p1", "p2"], True, "req-1")


def test_sqlalchemy_stream(tmp_path):
    async def body(engine, Session):
        async with engine.connect() as conn:
            result = await conn.stream(select(Post.title).order_by(Post.id))
            rows = [tuple(r) async for r in result]
            scalars = await conn.stream_scalars(select(User.name).order_by(User.id))
            names = [n async for n in scalars]
        async with Session() as s:
            users = await s.stream_scalars(select(User).order_by(User.id))
            streamed = [u.name async for u in users]
        return rows, names, streamed

    assert run_db(tmp_path, body) == ([("p1",), ("p2",)], ["ann", "bob"], ["ann", "bob"])


def test_sqlalchemy_database_errors_propagate_through_greenlet_spawn(tmp_path):
    async def body(engine, Session):
        async with Session() as s:
            s.add(User(name="ann"))  # unique name taken
            with pytest.raises(IntegrityError) as integrity:
                await s.commit()
            await s.rollback()
            still_works = await s.scalar(select(func.count()).select_from(User))
        async with engine.connect() as conn:
            with pytest.raises(OperationalError, match="no such table") as operational:
                await conn.execute(text("select * from nosuchtable"))
        return integrity.value, operational.value, still_works

    integrity, operational, count = run_db(tmp_path, body)
    assert type(integrity.orig).__name__ == "IntegrityError" and count == 2
    for exc in (integrity, operational):
        names = [f.name for f in traceback.extract_tb(exc.__traceback__)]
        # Raised in the sync engine code, run in the greenlet greenlet_spawn switched to.
        assert "greenlet_spawn" in names
        assert names.index("greenlet_spawn") < names.index("_execute_context")
        if sys.version_info >= (3, 11):
            assert frames_of_greenlet(exc.__traceback__) == []


def test_sqlalchemy_exception_from_sync_code_reaches_the_awaiting_task(tmp_path):
    def sync_part(session):
        session.execute(select(User)).all()
        raise LookupError("from sync code")

    async def body(engine, Session):
        async with Session() as s:
            with pytest.raises(LookupError, match="from sync code") as info:
                await s.run_sync(sync_part)
            return info.value, await s.scalar(select(func.count()).select_from(User))

    exc, count = run_db(tmp_path, body)
    assert count == 2
    assert [f.name for f in traceback.extract_tb(exc.__traceback__)][-1] == "sync_part"


def test_sqlalchemy_gather_of_sessions(tmp_path):
    def check(session, i):
        # Each sync part runs in its own greenlet, in its task's context.
        assert request_id.get() == i
        return session.execute(select(User.name).where(User.name == "w%d" % i)).scalar_one()

    async def worker(Session, i):
        request_id.set(i)
        async with Session() as s:
            s.add(User(name="w%d" % i, posts=[Post(title="t%d-%d" % (i, j)) for j in range(3)]))
            await s.commit()
            await asyncio.sleep(0)
            name = await s.run_sync(check, i)
            titles = (await s.scalars(select(Post.title).join(User).where(User.name == name)
                                      .order_by(Post.id))).all()
            return name, titles, request_id.get()

    async def body(engine, Session):
        return await asyncio.gather(*(worker(Session, i) for i in range(8)))

    assert run_db(tmp_path, body) == [
        ("w%d" % i, ["t%d-%d" % (i, j) for j in range(3)], i) for i in range(8)]


def test_sqlalchemy_cancelled_query(tmp_path):
    started = []

    def slow(x):
        started.append(x)
        import time
        time.sleep(0.02)  # in aiosqlite's thread; the query runs it once per row (16)
        return x

    async def body(engine, Session):
        @event.listens_for(engine.sync_engine, "connect")
        def register(dbapi_conn, record):
            dbapi_conn.run_async(lambda conn: conn.create_function("slow", 1, slow))

        await engine.dispose()  # new connections get `slow`
        async with engine.connect() as conn:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    conn.execute(text("select slow(u1.id) from users u1, users u2, users u3,"
                                      " users u4")), 0.05)
        async with engine.connect() as conn:
            return (await conn.execute(text("select count(*) from users"))).scalar()

    assert run_db(tmp_path, body) == 2
    assert started  # the query was running when the timeout cancelled its task


def test_sqlalchemy_greenlet_spawn_directly():
    # The bridge itself: sync code awaiting coroutines through greenlet.switch.

    def sync(n):
        total = 0
        for i in range(n):
            total += await_only(asyncio.sleep(0, result=i))
        return total, greenlet.getcurrent().parent is not None

    async def main():
        results = await asyncio.gather(*(greenlet_spawn(sync, n) for n in range(1, 50)))
        with pytest.raises(ZeroDivisionError):
            await greenlet_spawn(lambda: await_only(asyncio.sleep(0, result=1)) / 0)
        return results

    assert asyncio.run(main()) == [(n * (n - 1) // 2, True) for n in range(1, 50)]


# -- eventlet, in child processes ------------------------------------------------------------

PROGRAMS = os.path.join(os.path.dirname(__file__), "eventlet_programs.py")


def test_eventlet_basics():
    assert run_program("eventlet_basics") == {
        "imap": [0, 1, 4, 9, 16], "queue order": [4, 3, 2, 1, 0], "event": 42,
        "timeout": "0.01 seconds", "pool": list(range(10)), "running": 0,
        "corolocal": [0, 1, 2]}


def test_eventlet_kill():
    assert run_program("eventlet_kill") == {
        "a": True, "a waited": "GreenletExit()", "b": True, "c": "KeyError('c')", "d": True,
        "log": ["a started", "a exit", "a finally", "a linked, dead=False", "c started",
                "c finally", "d started", "d exit", "d finally"]}


def test_eventlet_traceback():
    out = run_program("eventlet_traceback")
    # From the waiter into the hub's switch, then on in the greenthread that raised.
    assert out["names"] == ["eventlet_traceback", "wait", "wait", "switch", "main", "outer",
                            "inner"]
    if sys.version_info >= (3, 11):
        assert out["ours"] == 0


def test_eventlet_green_sockets():
    assert run_program("eventlet_sockets") == {"clients": 100, "all echoed": True}


def test_eventlet_hubs():
    assert run_program("eventlet_hubs") == {
        "selects": ["eventlet.hubs.selects", True], "poll": ["eventlet.hubs.poll", True],
        "epolls": ["eventlet.hubs.epolls", True],
        "threads": {"a": [True, True], "b": [True, True]}}


def test_eventlet_tpool():
    assert run_program("eventlet_tpool") == {
        "results": [[i, True] for i in range(20)], "ticks": 5}


def test_eventlet_monkey_patch():
    # Also: nothing on stderr (eventlet logs RLocks it could not green there).
    assert run_program("eventlet_monkey_patch") == {
        "patched": [True, True, True], "order": [2, 1, 0],
        "queue": [[0, "t0"], [1, "t1"], [2, "t2"]], "condition": True, "rlock": True,
        "socket": "eventlet.greenio.base"}


def run_program(name):
    """Runs `name()` of eventlet_programs.py in a child process; returns its result through
    JSON. The child must write nothing to stderr."""
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)  # eventlet checks the RLocks it could not green without it
    out = subprocess.run([sys.executable, PROGRAMS, name], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return json.loads(out.stdout)


# -- packaging -------------------------------------------------------------------------------

def test_pip_keeps_the_installed_greenlet_for_these_libraries():
    # Their real requirements (eventlet's greenlet>=1.0, sqlalchemy[asyncio]'s greenlet>=1) are
    # met by the installed greenlet: pip would install nothing, not even look (--no-index).
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
                          "--disable-pip-version-check", "eventlet", "sqlalchemy[asyncio]",
                          "aiosqlite"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Requirement already satisfied: greenlet" in out.stdout
    assert "Would install" not in out.stdout
