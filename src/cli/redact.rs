//! Credentials never reach the output: the values of the AWS credential variables and of
//! credential storage options are replaced in every log line and error message the CLI
//! writes (S3 error responses can echo the access key id and, in the canonical request, the
//! session token).

use std::io::Write;
use std::sync::RwLock;

use fineo_batch::storage::is_credential_key;
use tracing_subscriber::fmt::MakeWriter;

/// What a credential is replaced with.
pub const MARK: &str = "[REDACTED]";

/// Shorter values are not replaced (they would match ordinary text); real credentials are
/// 16 characters and more.
const MIN_LEN: usize = 8;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds credential values to redact.
pub fn register<'a>(values: impl IntoIterator<Item = &'a str>) {
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for v in values {
        let v = v.trim();
        if v.len() >= MIN_LEN && !secrets.iter().any(|s| s == v) {
            secrets.push(v.to_string());
        }
    }
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Registers the credentials of the environment (`AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_ACCESS_KEY_ID`, ...: every `AWS_*` variable object_store reads
/// as a credential).
pub fn register_env() {
    let values: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("AWS_") && is_credential_key(k))
        .map(|(_, v)| v)
        .collect();
    register(values.iter().map(String::as_str));
}

/// `text` with every registered credential replaced by [`MARK`].
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MARK);
        }
    }
    out
}

/// A `MakeWriter` for log events: each event is collected, redacted and written to stderr
/// whole.
pub struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter(Vec::new())
    }
}

/// The bytes of one log event, written out (redacted) when dropped.
pub struct EventWriter(Vec<u8>);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = redact(&String::from_utf8_lossy(&self.0));
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_replaced_and_short_ones_ignored() {
        register([
            "unit-test-secret-0001",
            "short",
            "unit-test-secret-0001-longer",
        ]);
        assert_eq!(
            redact("a unit-test-secret-0001 b unit-test-secret-0001-longer c short"),
            "a [REDACTED] b [REDACTED] c short"
        );
    }
}
