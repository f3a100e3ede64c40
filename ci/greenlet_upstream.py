"""Helper of ci/greenlet-upstream-tests.sh.

run OUT.json     runs greenlet.tests (whichever greenlet is importable) and writes {test id: outcome}
run-ids OUT.json ID...     the same for some tests, in this process (used by run)
compare C.json OURS.json   fails unless every test the C extension passes also passes with ours,
                           except the tests that need greenlet's compiled test helpers (NEEDS_C).
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

MODULE_TIMEOUT = 180
TEST_TIMEOUT = 30

# Tests that need greenlet's compiled test helpers, which a pure-Python greenlet cannot provide.
# Keyed by test id prefix (a whole module or one test).
NEEDS_C = {
    "greenlet.tests.test_extension_interface":
        "imports greenlet.tests._test_extension (C API capsule tests)",
    "greenlet.tests.test_cpp":
        "imports greenlet.tests._test_extension_cpp (C++ exceptions through greenlets)",
    "greenlet.tests.test_greenlet.TestGreenlet.test_get_stack_with_nested_c_calls":
        "imports greenlet.tests._test_extension_cpp",
    "greenlet.tests.test_interpreter_shutdown.TestInterpreterShutdown"
    ".test_api_getcurrent_no_system_error_at_module_gc_time":
        "imports greenlet.tests._test_extension in its child script",
    "greenlet.tests.test_interpreter_shutdown.TestInterpreterShutdown"
    ".test_switch_no_error_at_module_gc_time":
        "imports greenlet.tests._test_extension in its child script",
}

class _Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes[test.id()] = "passed"

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes[test.id()] = "failed"

    def addError(self, test, err):
        super().addError(test, err)
        self.outcomes[test.id()] = "error"

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes[test.id()] = "skipped"

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcomes[test.id()] = "xfailed"

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcomes[test.id()] = "xpassed"


def _ids(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _ids(t)
        else:
            yield t.id()


def run_ids(out, ids):
    """Runs the given tests in this process."""
    suite = unittest.defaultTestLoader.loadTestsFromNames(ids)
    runner = unittest.TextTestRunner(verbosity=1, resultclass=_Recorder, stream=sys.stdout)
    result = runner.run(suite)
    for test, _ in result.errors:  # errors in setUpClass and the like
        result.outcomes.setdefault(test.id(), "error")
    with open(out, "w") as f:
        json.dump(result.outcomes, f)
    # A test may leave a thread blocked forever (a leak, which these runs do not measure);
    # it must not keep this process from ending once the results are written.
    sys.stdout.flush()
    os._exit(0)


def _run_in_child(ids, timeout):
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        try:
            subprocess.run([sys.executable, __file__, "run-ids", tmp.name] + ids,
                           timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None
        try:
            with open(tmp.name) as f:
                return json.load(f)
        except ValueError:
            return {}  # the child died (crash): whatever did not report counts as not run


def run(out):
    """Runs every test of greenlet.tests, one module per child process. A module that hangs
    (a test waiting forever on something that never happens) is rerun one test per child,
    so only the hanging test is lost ("timeout")."""
    import greenlet
    print("greenlet under test:", greenlet.__file__, greenlet.__version__, flush=True)
    tests_dir = os.path.dirname(greenlet.__file__) + "/tests"
    suite = unittest.defaultTestLoader.discover(tests_dir, top_level_dir=os.path.dirname(
        os.path.dirname(greenlet.__file__)))
    by_module = {}
    for test_id in _ids(suite):
        by_module.setdefault(test_id.rsplit(".", 2)[0], []).append(test_id)
    outcomes = {}
    for module, ids in sorted(by_module.items()):
        got = _run_in_child(ids, MODULE_TIMEOUT)
        if got is None:
            print("%s hung; rerunning its tests one by one" % module, flush=True)
            got = {}
            for test_id in ids:
                one = _run_in_child([test_id], TEST_TIMEOUT)
                got[test_id] = "timeout" if one is None else one.get(test_id, "not run")
        for test_id in ids:
            outcomes[test_id] = got.get(test_id, "not run")
        outcomes.update(got)
    counts = {}
    for o in outcomes.values():
        counts[o] = counts.get(o, 0) + 1
    print("outcomes:", counts, flush=True)
    with open(out, "w") as f:
        json.dump(outcomes, f, indent=1, sort_keys=True)


def needs_c(test_id):
    for prefix, reason in NEEDS_C.items():
        if test_id == prefix or test_id.startswith(prefix + "."):
            return reason
        # unittest names a module that failed to import "unittest.loader._FailedTest.<module>"
        if test_id == "unittest.loader._FailedTest." + prefix.rsplit(".", 1)[-1]:
            return reason
    return None


def compare(c_json, ours_json):
    with open(c_json) as f:
        c = json.load(f)
    with open(ours_json) as f:
        ours = json.load(f)
    c_passed = sorted(t for t, o in c.items() if o == "passed")
    excluded, missing = [], []
    for t in c_passed:
        if ours.get(t) != "passed":
            reason = needs_c(t)
            if reason:
                excluded.append((t, reason))
            else:
                missing.append((t, ours.get(t, "not run")))
    both = len(c_passed) - len(excluded) - len(missing)
    print("C extension passed %d; ours passed %d of them; %d need compiled test helpers; "
          "%d failures" % (len(c_passed), both, len(excluded), len(missing)))
    for t, reason in excluded:
        print("  excluded (needs compiled helper): %s: %s" % (t, reason))
    for t, outcome in missing:
        print("  FAIL: passes with the C extension, %s with ours: %s" % (outcome, t))
    return 1 if missing else 0


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2])
    elif sys.argv[1] == "run-ids":
        run_ids(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
