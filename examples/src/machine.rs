//! What a benchmark figure came from: the machine (cores, memory, CPU model, load) and a
//! process's memory (`/proc/PID/status`), Linux only.
//!
//! WHY: BENCHMARKS.md figures are only comparable with the machine and its load next to
//! them (issue 9: "the latest results with the machine they came from"); the box is shared,
//! so the load average at the start and the end of a run says how noisy it was.

use std::process::Command;

/// The machine as printed above a run's figures.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub mem_total_kib: u64,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_total_kib: kib_field(&meminfo, "MemTotal:").unwrap_or(0),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|v| v.split_once(':'))
                .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned()),
        }
    }
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages, as printed there.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC` (from `date`, which every Linux has).
pub fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown time".to_owned(), |s| s.trim().to_owned())
}

/// A `kB` field of a `/proc` file (`VmRSS:`, `VmHWM:`, `MemTotal:` …).
pub fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident memory (`VmRSS`) and its peak (`VmHWM`) of a process, in KiB.
pub fn rss_and_peak_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((kib_field(&status, "VmRSS:")?, kib_field(&status, "VmHWM:")?))
}

/// Resets the process's peak resident size (`VmHWM`) to its current size, so the next peak
/// belongs to what runs from now on (`echo 5 > /proc/PID/clear_refs`, Linux >= 4.0). Returns
/// false if the kernel refused.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine_and_this_process() {
        let m = Machine::read();
        assert!(m.cores >= 1 && m.mem_total_kib > 0, "{m:?}");
        assert_eq!(load_average().split(' ').count(), 3);
        let (rss, peak) = rss_and_peak_kib(std::process::id()).unwrap();
        assert!(rss > 0 && peak >= rss);
        assert!(reset_peak(std::process::id()));
        assert_eq!(kib_field("VmHWM:\t  1234 kB\n", "VmHWM:"), Some(1234));
        assert!(utc_now().ends_with("UTC"));
    }
}
