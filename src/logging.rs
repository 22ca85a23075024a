//! Log lines: env_logger's text, or one JSON object a line
//! (`LOG_FORMAT=json`), each carrying the id of the request it was
//! written for (`X-Request-Id`, see `web::request_id`).

use std::future::Future;
use std::io::Write;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `work` as the request `id`'s: every line it logs carries the id.
pub async fn with_request_id<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The id of the request being served, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `LOG_FORMAT`: `text` (the default) or `json`.
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw.map(str::trim) {
            None | Some("") | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(format!("LOG_FORMAT must be text or json, not {other:?}")),
        }
    }
}

/// Starts logging to stderr in `format`, filtered by `RUST_LOG` (`info`).
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => builder.format(|buf, record| {
            let time = buf.timestamp();
            let id = request_id()
                .map(|id| format!(" [{id}]"))
                .unwrap_or_default();
            writeln!(
                buf,
                "[{time} {:<5} {}]{id} {}",
                record.level(),
                record.target(),
                record.args()
            )
        }),
        LogFormat::Json => builder.format(|buf, record| {
            let line = json_line(
                &buf.timestamp().to_string(),
                record.level().as_str(),
                record.target(),
                &record.args().to_string(),
                request_id().as_deref(),
            );
            writeln!(buf, "{line}")
        }),
    };
    builder.init();
}

fn json_line(time: &str, level: &str, target: &str, message: &str, id: Option<&str>) -> String {
    let mut line = serde_json::json!({
        "time": time,
        "level": level,
        "target": target,
        "message": message,
    });
    if let Some(id) = id {
        line["request_id"] = id.into();
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_text_unless_json_is_asked_for() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("json")), Ok(LogFormat::Json));
        assert!(
            LogFormat::parse(Some("xml"))
                .unwrap_err()
                .contains("LOG_FORMAT")
        );
    }

    #[test]
    fn a_json_line_is_one_object_with_the_request_id_when_there_is_one() {
        let line = json_line(
            "2026-12-06T18:00:00Z",
            "INFO",
            "lance",
            "said \"hi\"\n",
            Some("r1"),
        );
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["message"], "said \"hi\"\n");
        assert_eq!(value["request_id"], "r1");
        let none = json_line("t", "WARN", "x", "m", None);
        assert!(!none.contains("request_id"));
    }

    #[tokio::test]
    async fn lines_written_while_serving_a_request_know_its_id() {
        assert_eq!(request_id(), None);
        let inside = with_request_id("abc".to_owned(), async { request_id() }).await;
        assert_eq!(inside.as_deref(), Some("abc"));
    }
}
