//! Log output in Jina's shape: `<name>@<pid>[<level>]: <message>`, e.g.
//! `encoder@4242[L]: ready and listening`. `[L]` is the reference's success level: events with
//! target `success` print it. The filter comes from `JINA_LOG_LEVEL` (or `RUST_LOG`).
//!
//! With `JINA_LOG_FORMAT=json`, each line is one JSON object instead: `time`, `level`, `name`,
//! `pid`, `message`, any other fields of the event, and `request_id` (and `trace_id`, with
//! traces on) when the line was logged while a request was being answered (inside its
//! `request` span).

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, format::Writer};
use tracing_subscriber::registry::LookupSpan;

/// How each line is written: Jina's `name@pid[L]: message`, or one JSON object.
struct LineFormat {
    name: String,
    pid: u32,
    json: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
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
        if self.json {
            return self.write_json(ctx, writer, event);
        }
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

/// Collects an event's fields as JSON.
#[derive(Default)]
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl LineFormat {
    /// One JSON object per line.
    fn write_json<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let meta = event.metadata();
        let level = match meta.target() {
            "success" => "SUCCESS",
            _ => meta.level().as_str(),
        };
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert("time".into(), jiff::Timestamp::now().to_string().into());
        line.insert("level".into(), level.into());
        line.insert("name".into(), self.name.clone().into());
        line.insert("pid".into(), self.pid.into());
        // The request being answered, and its trace: the innermost span that names them.
        for key in ["request_id", "trace_id"] {
            let value = ctx.event_scope().and_then(|scope| {
                scope.into_iter().find_map(|span| {
                    let extensions = span.extensions();
                    let fields = extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>()?;
                    let rest = fields.fields.split(&format!("{key}=")).nth(1)?;
                    Some(
                        rest.split_whitespace()
                            .next()?
                            .trim_matches('"')
                            .to_string(),
                    )
                })
            });
            if let Some(value) = value {
                line.insert(key.into(), value.into());
            }
        }
        line.extend(fields.0);
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

/// Whether `JINA_LOG_FORMAT` asks for one JSON object per line.
fn json_wanted() -> bool {
    std::env::var("JINA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"))
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
pub(crate) fn init(name: &str) {
    init_traced(name, None);
}

/// [`init`], with our spans (from info up) also turned into OpenTelemetry spans by `traces`.
/// The layer is there from the start, never swapped in later: the calls that join a span to
/// a remote parent must find it.
pub(crate) fn init_traced(name: &str, traces: Option<crate::telemetry::TracesLayer>) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("JINA_LOG_LEVEL")
        .ok()
        .map(|l| jina_filter(&l))
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let ours = tracing_subscriber::filter::Targets::new().with_target("jina", Level::INFO);
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // No colour codes in a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal() && !json_wanted())
        // A closed stderr (the reader went away) must not turn into a panic: the subscriber
        // would report its write error with eprint!, which panics on the same closed stream.
        .log_internal_errors(false);
    let output = output.event_format(LineFormat {
        name: name.to_string(),
        pid: std::process::id(),
        json: json_wanted(),
    });
    let _ = tracing_subscriber::registry()
        .with(traces.map(|t| t.with_filter(ours)))
        .with(output.with_filter(EnvFilter::new(filter)))
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
