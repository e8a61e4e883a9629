//! Log output in Jina's shape: `<name>@<pid>[<level>]: <message>`, e.g.
//! `encoder@4242[L]: ready and listening`. `[L]` is the reference's success level: events with
//! target `success` print it. The filter comes from `JINA_LOG_LEVEL` (or `RUST_LOG`).

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, format::Writer};
use tracing_subscriber::registry::LookupSpan;

struct JinaFormat {
    name: String,
    pid: u32,
}

impl<S, N> FormatEvent<S, N> for JinaFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            _ if meta.target() == "success" => 'L',
            Level::ERROR => 'E',
            Level::WARN => 'W',
            Level::INFO => 'I',
            Level::DEBUG => 'D',
            Level::TRACE => 'T',
        };
        write!(writer, "{}@{}[{}]: ", self.name, self.pid, level)?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The libraries under us whose debug lines are frame dumps, not news about the Flow:
/// `JINA_LOG_LEVEL=DEBUG` keeps them at info (`RUST_LOG` can still ask for them).
const QUIET_LIBRARIES: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tower",
    "tonic",
    "rustls",
    "tungstenite",
    "tokio_tungstenite",
    "reqwest",
    "axum",
];

/// The filter `JINA_LOG_LEVEL` asks for, with the libraries' chatter left out.
fn jina_filter(level: &str) -> String {
    let level = level.to_lowercase();
    let quiet = matches!(level.as_str(), "debug" | "trace");
    std::iter::once(level.clone())
        .chain(
            QUIET_LIBRARIES
                .iter()
                .filter(|_| quiet)
                .map(|l| format!("{l}=info")),
        )
        .collect::<Vec<_>>()
        .join(",")
}

/// Installs the logger for a process named `name` (once; later calls do nothing).
pub fn init(name: &str) {
    use std::io::IsTerminal;
    let filter = std::env::var("JINA_LOG_LEVEL")
        .ok()
        .map(|l| jina_filter(&l))
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // No colour codes in a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        // A closed stderr (the reader went away) must not turn into a panic: the subscriber
        // would report its write error with eprint!, which panics on the same closed stream.
        .log_internal_errors(false)
        .event_format(JinaFormat {
            name: name.into(),
            pid: std::process::id(),
        })
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_leaves_the_libraries_frame_dumps_out() {
        assert_eq!(super::jina_filter("INFO"), "info");
        let debug = super::jina_filter("DEBUG");
        assert!(
            debug.starts_with("debug,") && debug.contains("h2=info"),
            "{debug}"
        );
    }
}
