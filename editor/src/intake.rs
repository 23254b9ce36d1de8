//! What the import screen shows and sends, pure: how far an upload and a run are, a run's
//! counts, which files a flow takes, and the address a file is sent to.

use serde_json::Value;
use tabiji_model::import::{FileKind, ImportFlow, Source};

use crate::api;

/// A run's counts in the order the screen shows them; each is also the key of its label
/// (`imports.count.{name}`).
pub const COUNTS: [&str; 7] = [
    "rows_read",
    "created",
    "updated",
    "unchanged",
    "deleted",
    "merged",
    "rejected",
];

/// Where an import stands, as the progress bar shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The file is on its way to the server: this percent of it has arrived.
    Sending(u32),
    /// The server is reading it into the records: this percent of it is read.
    Reading(u32),
    /// Every row was read (some may have been rejected).
    Done,
    /// The file could not be read on, or the database failed; committed batches stay.
    Failed,
}

impl Stage {
    /// The bar's value, 0 to 100.
    pub fn percent(self) -> u32 {
        match self {
            Stage::Sending(p) | Stage::Reading(p) => p,
            Stage::Done | Stage::Failed => 100,
        }
    }

    /// The key of its words, and of the `data-stage` the tests read.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Sending(_) => "sending",
            Stage::Reading(_) => "reading",
            Stage::Done => "done",
            Stage::Failed => "failed",
        }
    }
}

/// `part` of `whole` in whole percent, rounded down so 100 means all of it; an empty whole
/// is all there.
pub fn percent(part: f64, whole: f64) -> u32 {
    if whole <= 0.0 {
        return 100;
    }
    ((part / whole).clamp(0.0, 1.0) * 100.0).floor() as u32
}

/// Where a run (as the API answers it) stands.
pub fn stage_of(run: &Value) -> Stage {
    match run["status"].as_str() {
        Some("done") => Stage::Done,
        Some("failed") => Stage::Failed,
        _ => Stage::Reading(percent(
            run["bytes_read"].as_f64().unwrap_or(0.0),
            run["file_bytes"].as_f64().unwrap_or(0.0),
        )),
    }
}

/// A file's size the way people read it: `812 B`, `14.2 KB`, `1.8 MB` (units of 1,024).
pub fn size_text(bytes: i64) -> String {
    const KB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KB {
        format!("{bytes} B")
    } else if b < KB * KB {
        format!("{:.1} KB", b / KB)
    } else {
        format!("{:.1} MB", b / KB / KB)
    }
}

/// The address a file named `file_name` is sent to for flow `key`.
pub fn run_path(key: &str, file_name: &str) -> String {
    format!(
        "/api/imports/flows/{}/run?file={}",
        api::encoded(key),
        api::encoded(file_name)
    )
}

/// What the file picker offers for a flow's files.
pub fn accepts(flow: &ImportFlow) -> &'static str {
    match flow.file.kind {
        FileKind::Csv => ".csv,.tsv,.txt,text/csv,text/plain",
        FileKind::Xlsx => ".xlsx,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
}

/// Whether the flow fetches its own files (a folder, an SFTP server, an address), which the
/// screen offers to do now.
pub fn fetches(flow: &ImportFlow) -> bool {
    !matches!(flow.source, Source::Upload)
}

/// The key of the words for where a flow's files come from.
pub fn source_key(flow: &ImportFlow) -> &'static str {
    match flow.source {
        Source::Upload => "imports.source.upload",
        Source::Directory { .. } => "imports.source.directory",
        Source::Sftp(_) => "imports.source.sftp",
        Source::Http(_) => "imports.source.http",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flow(extra: Value) -> ImportFlow {
        let mut definition = json!({"format": 1, "name": "会員", "entity": "tourists",
            "columns": [{"column": "email", "field": "email"}],
            "action": {"type": "upsert", "key": "email"}});
        for (k, v) in extra.as_object().unwrap() {
            definition[k] = v.clone();
        }
        serde_json::from_value(definition).unwrap()
    }

    #[test]
    fn a_run_is_as_far_as_the_bytes_it_has_read() {
        assert_eq!(
            stage_of(&json!({"status": "running", "bytes_read": 0, "file_bytes": 800})),
            Stage::Reading(0)
        );
        assert_eq!(
            stage_of(&json!({"status": "running", "bytes_read": 599, "file_bytes": 800})),
            Stage::Reading(74)
        );
        assert_eq!(
            stage_of(&json!({"status": "running", "bytes_read": 800, "file_bytes": 800})),
            Stage::Reading(100)
        );
        let done = stage_of(&json!({"status": "done", "bytes_read": 10, "file_bytes": 800}));
        assert_eq!((done, done.percent()), (Stage::Done, 100));
        assert_eq!(stage_of(&json!({"status": "failed"})), Stage::Failed);
        assert_eq!(Stage::Sending(41).percent(), 41);
    }

    #[test]
    fn percents_never_pass_the_whole() {
        assert_eq!(percent(0.0, 0.0), 100, "an empty file is all there");
        assert_eq!(percent(999.0, 1000.0), 99, "100 only when all of it is");
        assert_eq!(percent(2000.0, 1000.0), 100);
        assert_eq!(percent(-1.0, 1000.0), 0);
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size_text(812), "812 B");
        assert_eq!(size_text(14_540), "14.2 KB");
        assert_eq!(size_text(1_838_310), "1.8 MB");
    }

    #[test]
    fn file_names_travel_escaped() {
        assert_eq!(
            run_path("ota_users", "会員 2024&x=1.csv"),
            "/api/imports/flows/ota_users/run?file=%E4%BC%9A%E5%93%A1%202024%26x%3D1.csv"
        );
    }

    #[test]
    fn the_picker_offers_the_flows_kind_of_file() {
        assert!(accepts(&flow(json!({}))).contains(".csv"));
        let workbook = flow(json!({"file": {"kind": "xlsx"}}));
        assert!(accepts(&workbook).starts_with(".xlsx"));
        assert!(!fetches(&workbook));
        let folder =
            flow(json!({"source": {"type": "directory", "path": "ota", "pattern": "*.csv"}}));
        assert!(fetches(&folder));
        assert_eq!(source_key(&folder), "imports.source.directory");
    }
}
