//! What Linux says of a process in /proc.

/// A field of /proc/PID/status in kB (`VmRSS`, `VmHWM`); `None` if the
/// process or the field is gone.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
