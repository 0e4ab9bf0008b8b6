//! Reading CPU counters and the load average from /proc.

use std::path::Path;

use ferry_harness::Store;

/// USER_HZ: the unit of /proc CPU counters on Linux.
pub const TICKS_PER_SEC: f64 = 100.0;

/// (busy, total) ticks of all cores, from /proc/stat.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// utime + stime of a process, in ticks.
pub fn process_ticks(pid: u32) -> Option<u64> {
    process_times(pid).map(|(user, system)| user + system)
}

/// (utime, stime) of a process, in ticks.
pub fn process_times(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

/// CPU time of a process to the nanosecond: the scheduler's run time of
/// each of its threads (`/proc/PID/task/TID/schedstat`), by thread id.
/// `/proc/PID/stat` counts in 10 ms ticks, which over a run of a few
/// hundred small requests is several µs per request.
pub fn thread_runtimes(pid: u32) -> Option<Vec<(u32, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        // A thread that ended since the listing is not counted.
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")) else {
            continue;
        };
        out.push((tid, text.split_whitespace().next()?.parse().ok()?));
    }
    out.sort_unstable();
    Some(out)
}

/// CPU seconds between two [`thread_runtimes`] of one process; `None` when
/// a thread started or ended between them (its time would be counted in
/// part or lost).
pub fn runtime_between(before: &[(u32, u64)], after: &[(u32, u64)]) -> Option<f64> {
    let same = before.len() == after.len() && before.iter().zip(after).all(|(a, b)| a.0 == b.0);
    same.then(|| {
        let ns: u64 = before
            .iter()
            .zip(after)
            .map(|(a, b)| b.1.saturating_sub(a.1))
            .sum();
        ns as f64 / 1e9
    })
}

/// The Garage server of `store`: the process whose command line names the
/// config in the store's directory.
pub fn garage_pids(store: &Store) -> Vec<u32> {
    let Some(dir) = store.log_path().parent() else {
        return Vec::new();
    };
    let config = dir.join("garage.toml");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| cmdline_names(*pid, &config))
        .collect()
}

fn cmdline_names(pid: u32, path: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = path.as_os_str().as_encoded_bytes();
    raw.split(|&b| b == 0).any(|arg| arg == want)
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> Option<(f64, f64, f64)> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut f = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((f.next()??, f.next()??, f.next()??))
}
