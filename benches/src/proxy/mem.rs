//! A process's resident memory and a client's open connections, read from
//! /proc while a run goes on: the proxy's peak RSS (VmHWM, reset before the
//! run through `clear_refs`, and VmRSS sampled as a check), and how many of
//! this process's sockets are ESTABLISHED to a port (so that "1,000
//! clients" is 1,000 connections, not 1,000 requests on a small pool).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ferry_harness::procfs::status_kib;

/// Resets the process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0,
/// `echo 5 > /proc/PID/clear_refs`); whether it could.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The soft limit on open files of a process ("Max open files" in
/// /proc/PID/limits).
pub fn open_files_limit(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The socket inodes among this process's open files.
fn own_socket_inodes() -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let s = link.to_str()?;
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// This process's TCP connections in state ESTABLISHED whose remote port
/// is `port` (IPv4 and IPv6).
pub fn own_established_to(port: u16) -> usize {
    let inodes = own_socket_inodes();
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(rem), Some(st), Some(inode)) = (f.get(2), f.get(3), f.get(9)) else {
                continue;
            };
            let rport = rem
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *st == "01"
                && rport == Some(port)
                && inode.parse().is_ok_and(|i: u64| inodes.contains(&i))
            {
                n += 1;
            }
        }
    }
    n
}

/// What a [`Sampler`] saw during a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemSeen {
    /// VmRSS of the process when the run started, kB.
    pub rss_before_kib: u64,
    /// VmHWM at the end of the run, after a reset at its start (0 when
    /// the reset failed: then only the sampled figure holds), kB.
    pub hwm_kib: u64,
    /// The largest VmRSS sampled during the run, kB.
    pub sampled_max_kib: u64,
    /// The most of this process's connections ESTABLISHED to the watched
    /// port at once (sampled).
    pub conns_max: usize,
    /// This process's connections to the port before the case's first run
    /// (other clients' idle pooled ones): `conns_max` less these is a lower
    /// bound of the case's own.
    pub conns_before: usize,
    /// The most open files the process had at once (sampled).
    pub fds_max: usize,
}

impl MemSeen {
    /// The peak: VmHWM, or the sampled VmRSS when that is higher (the
    /// kernel's counters are per-CPU approximations) or VmHWM is missing.
    /// The case's own connections at most: those seen less those open
    /// before it.
    pub fn conns_own(&self) -> usize {
        self.conns_max.saturating_sub(self.conns_before)
    }

    pub fn peak_kib(&self) -> u64 {
        self.hwm_kib.max(self.sampled_max_kib)
    }

    /// The larger of each figure (several runs of one path).
    pub fn merge(&mut self, o: &MemSeen) {
        if self.rss_before_kib == 0 {
            self.rss_before_kib = o.rss_before_kib;
        }
        self.hwm_kib = self.hwm_kib.max(o.hwm_kib);
        self.sampled_max_kib = self.sampled_max_kib.max(o.sampled_max_kib);
        self.conns_max = self.conns_max.max(o.conns_max);
        self.conns_before = self.conns_before.max(o.conns_before);
        self.fds_max = self.fds_max.max(o.fds_max);
    }
}

/// Samples `pid`'s VmRSS every 20 ms, and (with a port) this process's
/// connections to that port every 200 ms, on a thread of its own, until
/// stopped.
pub struct Sampler {
    pid: u32,
    reset: bool,
    rss_before_kib: u64,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, usize, usize)>,
}

impl Sampler {
    /// Resets `pid`'s peak RSS and starts sampling.
    pub fn start(pid: u32, conns_to: Option<u16>) -> Sampler {
        let reset = reset_peak(pid);
        let rss_before_kib = status_kib(pid, "VmRSS").unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut rss, mut conns, mut fds) = (0u64, 0usize, 0usize);
            let mut tick = 0u64;
            loop {
                rss = rss.max(status_kib(pid, "VmRSS").unwrap_or(0));
                if let Some(port) = conns_to.filter(|_| tick.is_multiple_of(10)) {
                    conns = conns.max(own_established_to(port));
                    fds = fds.max(open_fds(pid).unwrap_or(0));
                }
                if flag.load(Ordering::Relaxed) {
                    return (rss, conns, fds);
                }
                tick += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler {
            pid,
            reset,
            rss_before_kib,
            stop,
            thread,
        }
    }

    pub fn stop(self) -> MemSeen {
        self.stop.store(true, Ordering::Relaxed);
        let (sampled_max_kib, conns_max, fds_max) = self.thread.join().unwrap_or_default();
        MemSeen {
            rss_before_kib: self.rss_before_kib,
            hwm_kib: if self.reset {
                status_kib(self.pid, "VmHWM").unwrap_or(0)
            } else {
                0
            },
            sampled_max_kib,
            conns_max,
            conns_before: 0,
            fds_max,
        }
    }
}
