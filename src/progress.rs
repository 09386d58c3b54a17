//! Progress reporting as the library sees it: a small trait the CLI implements with progress
//! bars on a terminal or periodic log lines otherwise.

/// Receives progress events; every method has a no-op default.
pub trait Progress: Send + Sync {
    /// A phase starts, with its unit count when known.
    fn start(&self, _phase: &str, _total: Option<u64>) {}
    /// `units` more done in the current phase (and `bytes` read, when it reads).
    fn advance(&self, _units: u64, _bytes: u64) {}
    /// The current phase is over.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Peak resident memory of this process, in bytes (Linux `VmHWM`; 0 elsewhere).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
