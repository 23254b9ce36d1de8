//! Scheduled exports (DI-4, CF-6): a file made on a schedule from the records a filter selects,
//! or from an aggregate of them, and delivered to a folder or an SFTP server, as data. The
//! point programme's daily file of yesterday's grants per system is one such job.
//!
//! [`ExportJob::check`] names every problem against the schema before anything runs.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aggregate::{AggregateMeasure, Grouping};
use crate::filter::{Filter, system_field};
use crate::import::{ImportFlowError, SftpLogin, is_plain_file_name, schedule_of};
use crate::schedule::{Recurrence, Schedule};
use crate::schema::EntitySchema;
use crate::zone::Zone;

/// The export-job format this code reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportJob {
    /// The export-job format, 1.
    pub format: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The entity exported (`tourists`, `point_ledger`, a history store …).
    pub entity: String,
    /// Which records; every record when left out. Relative periods (`{"last": "day"}`) count
    /// from the time the job is due, in `zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Records: these fields in this order (every field the job's owner may view when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// An aggregate instead of records: one line per group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    #[serde(default)]
    pub file: ExportFile,
    pub destination: Destination,
    /// When the job runs: a five-field `cron` or a `recurrence`, in `zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    #[serde(default = "tokyo")]
    pub zone: String,
}

fn tokyo() -> String {
    "Asia/Tokyo".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Up to two groupings (a field, or a date bucketed by day, week, month or year).
    #[serde(default)]
    pub group_by: Vec<Grouping>,
    /// `["count"]` when left out; `{"sum": "points"}`, `{"avg": …}`, `{"min": …}`, `{"max": …}`.
    #[serde(default)]
    pub measures: Vec<AggregateMeasure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportFile {
    #[serde(default)]
    pub encoding: ExportEncoding,
    #[serde(default)]
    pub header: HeaderNames,
    /// The file's name: `{date}` becomes the day the job was due (`20261129`), `{time}` its
    /// time (`0300`), both in `zone`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Text Excel would run as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`, in
    /// cells and headings (default). Turn it off for files read by systems, not people, where
    /// `+81…` must stay as it is.
    #[serde(default = "yes")]
    pub guard_formulas: bool,
}

fn yes() -> bool {
    true
}

impl Default for ExportFile {
    fn default() -> Self {
        ExportFile {
            encoding: ExportEncoding::default(),
            header: HeaderNames::default(),
            name: default_name(),
            guard_formulas: true,
        }
    }
}

fn default_name() -> String {
    "export_{date}.csv".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportEncoding {
    /// UTF-8 with a byte-order mark, so Excel opens it right.
    #[default]
    Utf8,
    /// Shift_JIS (CP932), for systems and Excel versions that expect it.
    ShiftJis,
}

/// What the header line names each column by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeaderNames {
    /// Field keys (`email`, `sum_points`): stable, for systems.
    #[default]
    Keys,
    /// The fields' Japanese labels.
    Ja,
    /// The fields' English labels.
    En,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Destination {
    /// A folder on this server, below the export root the operator configured
    /// (`TABIJI_EXPORT_ROOT`).
    Directory { path: String },
    /// A folder on an SFTP server (the same login fields as an SFTP import source).
    Sftp(SftpTarget),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftpTarget {
    pub host: String,
    #[serde(default = "crate::import::ssh_port")]
    pub port: u16,
    pub user: String,
    /// The server's host key fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`).
    pub host_key: String,
    /// File name of an unencrypted OpenSSH private key in the SFTP key folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Name of an environment variable starting with `TABIJI_SFTP_` that holds the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The folder on the server the file is written to.
    pub path: String,
}

impl SftpTarget {
    pub fn login(&self) -> SftpLogin<'_> {
        SftpLogin {
            host: &self.host,
            port: self.port,
            user: &self.user,
            host_key: &self.host_key,
            key: self.key.as_deref(),
            password_env: self.password_env.as_deref(),
            path: &self.path,
        }
    }
}

impl Destination {
    /// Where files go, for the history: the folder, or `sftp://user@host:port/folder`.
    pub fn place(&self) -> String {
        match self {
            Destination::Directory { path } => path.clone(),
            Destination::Sftp(sftp) => sftp.login().place(),
        }
    }
}

/// The JSON Schema of export jobs.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ExportJob)).expect("a schema is JSON")
}

fn err(at: impl Into<String>, code: &'static str, message: impl Into<String>) -> ImportFlowError {
    ImportFlowError {
        at: at.into(),
        code,
        message: message.into(),
    }
}

impl ExportJob {
    pub fn schedule(&self) -> Option<Result<Schedule, String>> {
        schedule_of(self.cron.as_deref(), self.recurrence.as_ref())
    }

    pub fn zone(&self) -> Option<Zone> {
        Zone::parse(&self.zone)
    }

    /// The file's name for a run due at `due`.
    pub fn file_name(&self, due: DateTime<Utc>) -> String {
        let zone = self.zone().unwrap_or(Zone::Named(chrono_tz::Asia::Tokyo));
        let local = zone.local(due);
        self.file
            .name
            .replace("{date}", &local.format("%Y%m%d").to_string())
            .replace("{time}", &local.format("%H%M").to_string())
    }

    /// Every problem with the job against its entity's schema. Field rights are checked
    /// when it is saved and when it runs, against its owner.
    pub fn check(&self, schema: Option<&EntitySchema>) -> Vec<ImportFlowError> {
        let mut errors = Vec::new();
        if self.format != FORMAT_VERSION {
            errors.push(err(
                "format",
                "unknown_format",
                format!("this is export-job format {FORMAT_VERSION}; set \"format\": 1"),
            ));
        }
        if self.name.trim().is_empty() {
            errors.push(err("name", "no_name", "give the job a name"));
        }
        let Some(schema) = schema else {
            errors.push(err(
                "entity",
                "unknown_entity",
                format!("there is no entity {:?}", self.entity),
            ));
            return errors;
        };
        let known = |key: &str| schema.field(key).is_some() || system_field(key).is_some();
        // Records carry their id first; the other fields are the entity's own.
        for (i, field) in self.fields.iter().enumerate() {
            if schema.field(field).is_none() {
                errors.push(err(
                    format!("fields[{i}]"),
                    "unknown_field",
                    format!("{} has no field {field:?}", self.entity),
                ));
            }
        }
        if let Some(summary) = &self.summary {
            if !self.fields.is_empty() {
                errors.push(err(
                    "fields",
                    "fields_with_summary",
                    "a summary's columns are its groupings and measures; leave fields out",
                ));
            }
            if summary.group_by.len() > 2 {
                errors.push(err(
                    "summary.group_by",
                    "too_many_groupings",
                    "group by at most two fields",
                ));
            }
            for (i, grouping) in summary.group_by.iter().enumerate() {
                if !known(&grouping.field) {
                    errors.push(err(
                        format!("summary.group_by[{i}].field"),
                        "unknown_field",
                        format!("{} has no field {:?}", self.entity, grouping.field),
                    ));
                }
            }
            for (i, measure) in summary.measures.iter().enumerate() {
                if let Some(field) = measure.field()
                    && !known(field)
                {
                    errors.push(err(
                        format!("summary.measures[{i}]"),
                        "unknown_field",
                        format!("{} has no field {field:?}", self.entity),
                    ));
                }
            }
        }
        if self.file.name.contains('/') || !is_plain_file_name(&self.file.name) {
            errors.push(err(
                "file.name",
                "invalid_file_name",
                "give a file name such as point_grants_{date}.csv (no folders, not hidden)",
            ));
        }
        match &self.destination {
            Destination::Directory { path } => {
                if !path.starts_with('/') {
                    errors.push(err(
                        "destination.path",
                        "relative_path",
                        "give the folder as an absolute path such as /srv/tabiji/exports/points",
                    ));
                }
            }
            Destination::Sftp(sftp) => sftp.login().check("destination", &mut errors),
        }
        match self.schedule() {
            None => errors.push(err(
                "cron",
                "no_schedule",
                "a job needs a schedule (cron or recurrence); run it at other times with run now",
            )),
            Some(Err(message)) => errors.push(err("cron", "invalid_schedule", message)),
            Some(Ok(_)) => {}
        }
        if self.zone().is_none() {
            errors.push(err(
                "zone",
                "unknown_zone",
                format!("{:?} is not a time zone such as Asia/Tokyo", self.zone),
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn ledger() -> EntitySchema {
        schema::builtin()
            .into_iter()
            .find(|s| s.name == "point_ledger")
            .unwrap()
    }

    fn job(json: serde_json::Value) -> ExportJob {
        serde_json::from_value(json).expect("the job parses")
    }

    fn daily_grants() -> serde_json::Value {
        serde_json::json!({
            "format": 1, "name": "point grants", "entity": "point_ledger",
            "filter": {"all": [
                {"field": {"key": "kind", "op": "eq", "value": "grant"}},
                {"field": {"key": "occurred_at", "op": "in_period", "value": {"last": "day"}}}
            ]},
            "summary": {
                "group_by": [{"field": "occurred_at", "bucket": "day"}, {"field": "source_system"}],
                "measures": ["count", {"sum": "points"}]
            },
            "file": {"name": "point_grants_{date}.csv", "encoding": "shift_jis"},
            "destination": {"type": "directory", "path": "/srv/tabiji/exports/points"},
            "recurrence": {"every": "day", "at": "04:00"}
        })
    }

    fn codes(job: &ExportJob) -> Vec<(String, &'static str)> {
        job.check(Some(&ledger()))
            .into_iter()
            .map(|e| (e.at, e.code))
            .collect()
    }

    #[test]
    fn the_daily_point_grant_file_is_a_valid_job_named_by_its_day_in_tokyo() {
        let daily = job(daily_grants());
        assert_eq!(codes(&daily), vec![]);
        let due = "2026-11-28T19:00:00Z".parse().unwrap();
        assert_eq!(daily.file_name(due), "point_grants_20261129.csv");
    }

    #[test]
    fn every_problem_names_its_place() {
        let mut json = daily_grants();
        json["fields"] = serde_json::json!(["points", "nickname"]);
        json["summary"]["group_by"][1]["field"] = "system".into();
        json["summary"]["measures"][1] = serde_json::json!({"sum": "amount"});
        json["file"]["name"] = "../x.csv".into();
        json["destination"]["path"] = "exports".into();
        json.as_object_mut().unwrap().remove("recurrence");
        assert_eq!(
            codes(&job(json)),
            vec![
                ("fields[1]".into(), "unknown_field"),
                ("fields".into(), "fields_with_summary"),
                ("summary.group_by[1].field".into(), "unknown_field"),
                ("summary.measures[1]".into(), "unknown_field"),
                ("file.name".into(), "invalid_file_name"),
                ("destination.path".into(), "relative_path"),
                ("cron".into(), "no_schedule"),
            ]
        );
    }

    #[test]
    fn sftp_destinations_are_checked_as_sftp_sources_are() {
        let mut json = daily_grants();
        json["destination"] = serde_json::json!({
            "type": "sftp", "host": "sftp.points.example", "user": "tabiji",
            "host_key": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            "key": "points_ed25519", "path": "/incoming"
        });
        assert_eq!(codes(&job(json.clone())), vec![]);
        json["destination"]["host_key"] = "nope".into();
        json["destination"]["password_env"] = "HOME".into();
        assert_eq!(
            codes(&job(json)),
            vec![
                ("destination.host_key".into(), "invalid_host_key"),
                ("destination.password_env".into(), "two_credentials"),
            ]
        );
    }
}
