//! Latency percentiles and CPU accounting.
//!
//! CPU is read from `/proc` at the start and the end of the measured window, for the generator
//! itself, for the server (when its pid is given) and for the whole machine. On a 2-core machine
//! the generator competes with the server, and other work may be running too: the difference
//! between the machine's busy time and the two processes' is what everything else used.

use std::time::Duration;

use serde::Serialize;

/// Latency percentiles of the requests of a window, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of latencies given in microseconds (sorted in place).
    pub fn of(micros: &mut [u32]) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let at = |p: f64| {
            let rank = (p * micros.len() as f64).ceil() as usize;
            f64::from(micros[rank.clamp(1, micros.len()) - 1]) / 1000.0
        };
        let sum: u64 = micros.iter().map(|&m| u64::from(m)).sum();
        Latency {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: f64::from(micros[micros.len() - 1]) / 1000.0,
            mean_ms: sum as f64 / micros.len() as f64 / 1000.0,
        }
    }
}

/// CPU time consumed so far, in seconds: by this process, by the server, by the whole machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSnapshot {
    pub own: f64,
    pub server: Option<f64>,
    pub machine_busy: Option<f64>,
}

impl CpuSnapshot {
    pub fn take(server_pid: Option<u32>) -> CpuSnapshot {
        CpuSnapshot {
            own: process_cpu("self").unwrap_or(0.0),
            server: server_pid.and_then(|pid| process_cpu(&pid.to_string())),
            machine_busy: machine_busy(),
        }
    }
}

/// Average cores used over a window, by whom.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CpuUse {
    /// The load generator.
    pub loadgen_cores: f64,
    /// The server, when its pid was given.
    pub server_cores: Option<f64>,
    /// The whole machine (all processes, kernel included).
    pub machine_cores: Option<f64>,
    /// Everything but the generator and the server: other users of the machine.
    pub other_cores: Option<f64>,
}

impl CpuUse {
    pub fn between(start: CpuSnapshot, end: CpuSnapshot, window: Duration) -> CpuUse {
        let secs = window.as_secs_f64();
        let loadgen = (end.own - start.own) / secs;
        let server = end.server.zip(start.server).map(|(e, s)| (e - s) / secs);
        let machine = end
            .machine_busy
            .zip(start.machine_busy)
            .map(|(e, s)| (e - s) / secs);
        CpuUse {
            loadgen_cores: loadgen,
            server_cores: server,
            machine_cores: machine,
            other_cores: machine.map(|m| (m - loadgen - server.unwrap_or(0.0)).max(0.0)),
        }
    }
}

// The one unsafe call of this crate: std has no sysconf.
#[allow(unsafe_code)]
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime of a process (all its threads), from `/proc/PID/stat`.
fn process_cpu(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after its closing parenthesis
    // start at field 3, so utime and stime (fields 14 and 15) are the 12th and 13th there.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / clock_ticks_per_second())
}

/// Busy CPU time of the whole machine (everything but idle and iowait), from `/proc/stat`.
fn machine_busy() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<f64> = line
        .split_whitespace()
        .take(8)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    Some((total - idle) / clock_ticks_per_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=1000).rev().collect();
        let l = Latency::of(&mut v);
        assert_eq!(l.p50_ms, 0.5);
        assert_eq!(l.p90_ms, 0.9);
        assert_eq!(l.p99_ms, 0.99);
        assert_eq!(l.max_ms, 1.0);
        assert_eq!(Latency::of(&mut []).max_ms, 0.0);
        assert_eq!(Latency::of(&mut [7000]).p50_ms, 7.0);
    }

    #[test]
    fn own_cpu_is_readable() {
        assert!(process_cpu("self").is_some());
        assert!(machine_busy().is_some());
    }
}
