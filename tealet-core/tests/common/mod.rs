//! Helpers shared by the integration tests.

/// Run `f` in a forked child; return (minus the exit signal, or the exit status: 101 if `f`
/// panicked) and its stderr.
pub fn in_child(f: impl FnOnce()) -> (i32, String) {
    let mut fds = [0; 2];
    // SAFETY: fork; the child only runs `f` then _exits; the parent reads the pipe and reaps it.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            libc::dup2(fds[1], 2);
            // A panic must end the child, not unwind into a copy of the test harness.
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
            libc::_exit(if ok { 0 } else { 101 });
        }
        libc::close(fds[1]);
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = libc::read(fds[0], buf.as_mut_ptr() as *mut _, buf.len());
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        libc::close(fds[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        let code = if libc::WIFSIGNALED(status) { -libc::WTERMSIG(status) } else { libc::WEXITSTATUS(status) };
        (code, String::from_utf8_lossy(&out).into_owned())
    }
}
