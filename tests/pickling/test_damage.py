"""Bad input gives a clear exception, never a crash: truncated or bit-flipped pickles, damaged
frame records, and a loading process where the pickled function or its module is missing."""
import pathlib
import shutil

from conftest import needs_frames, run_py

pytestmark = needs_frames

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "pickledtasklet.py"

DAMAGE = """
    import collections, contextlib, io, pickle, resource, sys
    # a flipped byte can turn into a pickle memo index in the billions, which the unpickler
    # allocates for: bound the address space so that is a MemoryError, not the machine's memory
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    import stackless
    exec(open("demo.py").read().split("if __name__")[0])
    data = open("tasklet.pickle", "rb").read()

    def attempt(blob):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                t = pickle.loads(blob)
                t.insert()
                stackless.run()
            return "ran", out.getvalue()
        except Exception as e:
            return type(e).__name__, str(e)

    print("intact", attempt(data))
    truncated = collections.Counter(attempt(data[:n])[0] for n in range(len(data)))
    print("truncated", sorted(truncated))
    flipped = collections.Counter()
    damaged = set()
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            blob = bytearray(data)
            blob[i] ^= bit
            kind, text = attempt(bytes(blob))
            flipped[kind] += 1
            if text.startswith("damaged frame of __main__.recurs in the pickle: "):
                damaged.add(text.split(": ", 1)[1])
    print("flipped", flipped["ran"] < sum(flipped.values()) // 10, flipped["UnpicklingError"] > 0)
    print("damaged", sorted(damaged))
"""


def test_truncated_and_bit_flipped_pickles_raise(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "demo.py")
    run_py(tmp_path, "exec(open('demo.py').read())")          # writes tasklet.pickle
    lines = run_py(tmp_path, DAMAGE).stdout.splitlines()
    leave = "".join("leave level %s%d\n" % (i * " ", i) for i in range(9, 0, -1))
    assert lines[0] == "intact " + repr(("ran", leave))
    # the pickle stream ends with STOP: every prefix is refused by pickle itself
    assert lines[1] in ("truncated ['EOFError', 'UnpicklingError']", "truncated ['UnpicklingError']")
    # every single-bit flip raised or ran (the process did not crash), most raised
    assert lines[2] == "flipped True True"
    damaged = eval(lines[3].split(" ", 1)[1])
    assert "its shape does not match its checksum" in damaged
    assert set(damaged) <= {"its shape does not match its checksum", "its fields have the wrong types"}


RECORDS = """
    import pickle, sys, stackless
    from stackless import _pickling
    MODE = sys.argv[1]
    ch = stackless.channel()

    def wait(box):
        seen = []
        def note(x):
            seen.append(x)
        note(ch.receive())
        return box[0] + len(seen)

    if MODE == "dump":
        damage = sys.argv[2]
        reduce = _pickling._Frame.__reduce__
        def damaged(self):
            load, (f, digest, shape, offset, items, nulls, selfs) = reduce(self)
            if f is wait:
                if damage == "offset":
                    offset += 2
                elif damage == "stack":
                    items = items[:-1]
                elif damage == "cell":
                    co = wait.__code__
                    cell = len(co.co_varnames) + co.co_cellvars.index("seen")
                    items = items[:cell] + ([],) + items[cell + 1:]
                elif damage == "nulls":
                    nulls = nulls + (0,)
                if damage != "nulls":
                    shape = _pickling._shape(offset, items, nulls, selfs)
            return load, (f, digest, shape, offset, items, nulls, selfs)
        _pickling._Frame.__reduce__ = damaged
        t = stackless.tasklet(wait)([41])
        stackless.run()
        pickle.dump((t, ch), open("state.pickle", "wb"))
    else:
        try:
            t, ch = pickle.load(open("state.pickle", "rb"))
        except pickle.UnpicklingError as e:
            print(e)
"""


def test_damaged_frame_records_are_refused_when_loaded(tmp_path):
    prefix = "damaged frame of __main__.wait in the pickle: "
    expected = {
        "offset": "the offset is not a resume point for this many stack entries",
        "stack": "the offset is not a resume point for this many stack entries",
        "cell": "a cell slot does not hold a cell",
        "nulls": "its shape does not match its checksum",
    }
    for damage, why in expected.items():
        run_py(tmp_path, RECORDS, "dump", damage)
        out = run_py(tmp_path, RECORDS, "load").stdout
        assert out.startswith(prefix + "frame record for <code object wait" if damage != "nulls" else prefix), out
        assert out.rstrip().endswith(why), (damage, out)


def test_records_passed_to_the_binding_directly_are_checked(tmp_path):
    script = """
        import _continuation
        def inner(c):
            return c.switch()
        def outer(c):
            return 1 + inner(c)
        def entry(c):
            return outer(c)
        c = _continuation.continulet(entry)
        c.switch()
        (good,), handled = _continuation.capture_frames(c, inner.__code__, entry.__code__)
        kind, code, func, offset, items, nulls, selfs = good
        for records in ([good], None, [None], [("frame",)], [(kind, code, func, offset, items, ("x",), selfs)],
                        [("c-call",) + good[1:]], [(kind, code, len) + good[3:]],
                        [(kind, code, func, offset + 2, items, nulls, selfs)],
                        [(kind, code, func, 10**6, items, nulls, selfs)],
                        [(kind, code, func, offset, items[:-1], nulls, selfs)],
                        [(kind, code, func, offset, items, (len(items),), selfs)]):
            try:
                _continuation.check_frames(records)
                print("accepted")
            except (TypeError, ValueError) as e:
                print(type(e).__name__, e)
        print(_continuation.continulet(_continuation.resume_frames, [good], lambda: 41).switch())
        bad = [(kind, code, func, offset + 1, items, nulls, selfs)]
        try:
            _continuation.continulet(_continuation.resume_frames, bad, print).switch()
        except ValueError as e:
            print("resume:", e)
    """
    out = run_py(tmp_path, script).stdout.splitlines()
    where = "frame record for <code object outer at "
    assert out[0] == "accepted"
    assert out[1] == "TypeError expected a sequence of frame records"
    assert out[2] == "TypeError a frame record is a tuple, not NoneType"
    assert out[3].startswith("TypeError frame record")
    assert out[4].startswith("TypeError ")
    for line in out[5:7]:
        assert line.startswith("ValueError " + where) and line.endswith(": not a resumable frame of its function")
    for line in out[7:9]:
        assert line.startswith("ValueError " + where)
        assert line.endswith(": the offset is not a resume point for this many stack entries")
    assert out[9].startswith("ValueError " + where)
    assert out[9].endswith((": the offset is not a resume point for this many stack entries", "wrong number of slots"))
    assert out[10].startswith("ValueError " + where) and out[10].endswith(": slot index out of range")
    assert out[11] == "42"
    assert out[12].startswith("resume: " + where)
    assert out[12].endswith(": the offset is not a resume point for this many stack entries")


def test_only_resume_points_right_after_an_inline_call_are_accepted(tmp_path):
    # Same stack depth is not enough: an offset after a POP_EXCEPT or an EXTENDED_ARG prefix, with
    # the items as they were, resumed the frame in the middle of other code (a crash).
    script = """
        import _continuation
        def inner(c):
            return c.switch()
        def outer(c, xs):
            total = 0
            for x in xs:
                with open(__file__ if "__file__" in globals() else "/dev/null"):
                    total += inner(c) + x
            return total
        def entry(c):
            return outer(c, [1, 2, 3])
        c = _continuation.continulet(entry)
        c.switch()
        (good,), handled = _continuation.capture_frames(c, inner.__code__, entry.__code__)
        kind, code, func, offset, items, nulls, selfs = good
        accepted = []
        for at in range(0, len(code.co_code), 2):
            try:
                _continuation.check_frames([(kind, code, func, at, items, nulls, selfs)])
                accepted.append(at)
            except ValueError:
                pass
        print(accepted == [offset], code.co_name)
    """
    assert run_py(tmp_path, script).stdout.split() == ["True", "outer"]


def test_resuming_leaves_the_callers_handled_exception_alone(tmp_path):
    script = """
        import sys, _continuation
        def inner(c):
            return c.switch()
        def outer(c):
            try:
                raise OSError("captured while handled")
            except OSError:
                return inner(c) + 1
        def entry(c):
            return outer(c)
        c = _continuation.continulet(entry)
        c.switch()
        records, handled = _continuation.capture_frames(c, inner.__code__, entry.__code__)
        try:
            raise KeyError("the caller's")
        except KeyError:
            for given in (None, ValueError("theirs")):
                print(_continuation.resume_frames(c, records, lambda: 41, given), repr(sys.exc_info()[1]))
        try:
            _continuation.resume_frames(None, records, lambda: 41)
        except TypeError as e:
            print("TypeError", "continulet" in str(e))
    """
    assert run_py(tmp_path, script).stdout.splitlines() == ['42 KeyError("the caller\'s")'] * 2 + [
        "TypeError True"]


BY_VALUE = """
    import pickle, sys, stackless
    ch = stackless.channel()
    scale = 3
    t = stackless.tasklet(lambda: print("got", ch.receive() * scale))()
    stackless.run()
    data = pickle.dumps((t, ch))
    code = t.func.__code__.co_code
    at = data.index(code) + len(code) - 2          # its last opcode (a bad one can crash CPython)
    for blob in (data, data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]):
        try:
            t2, ch2 = pickle.loads(blob)
            ch2.send(14)
        except pickle.UnpicklingError as e:
            print(e)
    ch.send(0)
"""


def test_damaged_code_of_a_function_pickled_by_value(tmp_path):
    out = run_py(tmp_path, BY_VALUE).stdout
    assert out == "got 42\ndamaged code of __main__.<lambda> in the pickle\ngot 0\n"


MISSING = """
    import pickle, sys, stackless
    MODE = sys.argv[1]
    if MODE == "dump":
        import jobs
        ch = stackless.channel()
        t = stackless.tasklet(jobs.work)(ch)
        stackless.run()
        pickle.dump((t, ch), open("state.pickle", "wb"))
    else:
        try:
            pickle.load(open("state.pickle", "rb"))
        except Exception as e:
            print(type(e).__name__ + ":", e)
"""


def test_loading_without_the_function_or_its_module(tmp_path):
    (tmp_path / "jobs.py").write_text("def work(ch):\n    return ch.receive()\n")
    run_py(tmp_path, MISSING, "dump")
    (tmp_path / "jobs.py").write_text("def other(ch):\n    return ch.receive()\n")
    out = run_py(tmp_path, MISSING, "load").stdout
    assert out.startswith("AttributeError: ") and "'work'" in out and "jobs" in out, out
    (tmp_path / "jobs.py").unlink()
    out = run_py(tmp_path, MISSING, "load").stdout
    assert out == "ModuleNotFoundError: No module named 'jobs'\n"
