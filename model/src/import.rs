//! Import flows (DI-1…DI-9, MA-11, AN-1): how a partner's file becomes records, as data.
//!
//! A flow names its target entity, where files come from, how they are encoded and delimited,
//! which column goes into which field (with code tables and Excel serial dates), and what a
//! row does: create or update the record with the same key (e-mail, member number …), delete
//! it when a flag column says so, or append a history row linked to its tourist by e-mail.
//! [`ImportFlow::check`] names every problem against the schema before a file is read.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::field::FieldType;
use crate::normalize::nfkc_cow;
use crate::schedule::{Cron, Recurrence, Schedule};
use crate::schema::{EntityKind, EntitySchema, SYSTEM_FIELDS};
use crate::zone::Zone;

/// The import-flow format this code reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportFlow {
    /// The import-flow format, 1.
    pub format: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The entity rows are written to (`tourists`, `point_ledger`, a history store …).
    pub entity: String,
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub file: FileFormat,
    /// Which column goes into which field.
    pub columns: Vec<ColumnMap>,
    pub action: Action,
    /// Values set on every row, such as `{"source_system": "ota", "kind": "grant"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub constants: BTreeMap<String, String>,
    /// Rows whose `column` holds one of `values` delete the record with their key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_when: Option<DeleteWhen>,
    /// Fills a reference field (such as `tourist_id`) by looking the record up by another of
    /// its fields (such as the tourist's e-mail) given in a column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// What an empty cell means: leave the stored value as it is (`keep`), or clear it.
    #[serde(default)]
    pub empty_cells: EmptyCells,
    /// When the flow fetches its files by itself (directory sources): a five-field `cron`
    /// or a `recurrence`, in `zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    #[serde(default = "tokyo")]
    pub zone: String,
}

/// The JSON Schema of import flows, for editors and partner tooling.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ImportFlow)).expect("a schema is JSON")
}

/// The schedule a `cron` or a `recurrence` gives; `None` when neither is given.
pub(crate) fn schedule_of(
    cron: Option<&str>,
    recurrence: Option<&Recurrence>,
) -> Option<Result<Schedule, String>> {
    match (cron, recurrence) {
        (None, None) => None,
        (Some(cron), None) => Some(Cron::parse(cron).map(Schedule::Cron)),
        (None, Some(recurrence)) => Some(recurrence.schedule()),
        _ => Some(Err(
            "give either a cron expression or a recurrence, not both".into(),
        )),
    }
}

fn check_pattern(pattern: &str, errors: &mut Vec<ImportFlowError>) {
    if pattern.is_empty() || pattern.contains('/') {
        errors.push(err(
            "source.pattern",
            "invalid_pattern",
            "give a file-name pattern such as users_*.csv (no folders)",
        ));
    }
}

impl SftpLogin<'_> {
    /// `sftp://user@host:port/folder`, for histories and messages.
    pub fn place(&self) -> String {
        format!(
            "sftp://{}@{}:{}/{}",
            self.user,
            self.host,
            self.port,
            self.path.trim_start_matches('/')
        )
    }

    /// Every problem with the login, each placed under `at` (`source`, `destination`).
    pub fn check(&self, at: &str, errors: &mut Vec<ImportFlowError>) {
        if self.host.trim().is_empty() {
            errors.push(err(
                format!("{at}.host"),
                "no_host",
                "name the SFTP server, such as sftp.partner.example",
            ));
        }
        if self.user.trim().is_empty() {
            errors.push(err(
                format!("{at}.user"),
                "no_user",
                "give the login name on the SFTP server",
            ));
        }
        if !is_sha256_fingerprint(self.host_key) {
            errors.push(err(
                format!("{at}.host_key"),
                "invalid_host_key",
                "give the server's key fingerprint as `ssh-keygen -lf` prints it, such as SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s (a fetch without it names the key the server offers)",
            ));
        }
        match (self.key, self.password_env) {
            (None, None) => errors.push(err(
                format!("{at}.key"),
                "no_credential",
                "name a private key file in the SFTP key folder (key) or an environment variable holding the password (password_env)",
            )),
            (Some(_), Some(_)) => errors.push(err(
                format!("{at}.password_env"),
                "two_credentials",
                "give either key or password_env, not both",
            )),
            (Some(key), None) => {
                if !is_plain_file_name(key) {
                    errors.push(err(
                        format!("{at}.key"),
                        "invalid_key_name",
                        "give the key's file name in the SFTP key folder, without folders",
                    ));
                }
            }
            (None, Some(name)) => {
                if !is_variable_name(name, SFTP_PASSWORD_ENV_PREFIX) {
                    errors.push(err(
                        format!("{at}.password_env"),
                        "invalid_password_env",
                        format!(
                            "name an environment variable such as {SFTP_PASSWORD_ENV_PREFIX}OTA_PASSWORD (capital letters, digits and _ after {SFTP_PASSWORD_ENV_PREFIX})"
                        ),
                    ));
                }
            }
        }
        if self.path.trim().is_empty() {
            errors.push(err(
                format!("{at}.path"),
                "no_path",
                "give the folder on the server, such as /outgoing or outgoing",
            ));
        }
    }
}

/// `SHA256:` and 43 characters of unpadded base64, as OpenSSH prints fingerprints.
fn is_sha256_fingerprint(text: &str) -> bool {
    text.strip_prefix("SHA256:").is_some_and(|hash| {
        hash.len() == 43
            && hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    })
}

/// A name inside one folder: no separators, not hidden, not `.` or `..`.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

fn tokyo() -> String {
    "Asia/Tokyo".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// Files are sent to the flow (API upload or `tabiji import`).
    #[default]
    Upload,
    /// Files matching `pattern` (`*` and `?`) in the server's folder `path` are imported on
    /// the schedule, oldest first, then moved to its `done` subfolder.
    Directory { path: String, pattern: String },
    /// Files matching `pattern` in the folder `path` of an SFTP server are downloaded on the
    /// schedule, oldest first, imported, then moved to that folder's `done` subfolder on the
    /// server. Credentials are not part of the flow: `key` names a private key file the
    /// operator put in the SFTP key folder (`TABIJI_SFTP_KEYS`), `password_env` an environment
    /// variable of the server process holding the password.
    Sftp(SftpSource),
    /// The file at `url` is downloaded on the schedule and imported, unless it is the same as
    /// the last file this flow imported from it. The operator lists the hosts HTTP sources may
    /// reach (`TABIJI_HTTP_HOSTS`).
    Http(HttpSource),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// `https://…` (or `http://…`).
    pub url: String,
    /// Request headers whose values are secrets kept out of the flow: header name → the name
    /// of an environment variable starting with `TABIJI_HTTP_` that holds the value, such as
    /// `{"Authorization": "TABIJI_HTTP_OTA_AUTHORIZATION"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Prefix of the environment variables HTTP sources may read header values from.
pub const HTTP_HEADER_ENV_PREFIX: &str = "TABIJI_HTTP_";

impl HttpSource {
    /// The host (and port, when the URL names one) the URL points at, if it is an http(s) URL.
    pub fn host(&self) -> Option<&str> {
        let rest = self
            .url
            .strip_prefix("https://")
            .or_else(|| self.url.strip_prefix("http://"))?;
        let authority = rest.split(['/', '?', '#']).next()?;
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return None;
        }
        Some(authority)
    }

    fn check(&self, errors: &mut Vec<ImportFlowError>) {
        if self.host().is_none() || self.url.chars().any(char::is_whitespace) {
            errors.push(err(
                "source.url",
                "invalid_url",
                "give the file's address as https://host/path (no user or password in it: send those as headers)",
            ));
        }
        for (name, variable) in &self.headers {
            let at = format!("source.headers.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                errors.push(err(at.clone(), "invalid_header", "not a header name"));
            }
            if !is_variable_name(variable, HTTP_HEADER_ENV_PREFIX) {
                errors.push(err(
                    at,
                    "invalid_header_env",
                    format!(
                        "name the environment variable holding the value, such as {HTTP_HEADER_ENV_PREFIX}OTA_TOKEN (capital letters, digits and _ after {HTTP_HEADER_ENV_PREFIX})"
                    ),
                ));
            }
        }
    }
}

/// `PREFIX` followed by capital letters, digits and `_`.
fn is_variable_name(name: &str, prefix: &str) -> bool {
    let rest = name.strip_prefix(prefix).unwrap_or("");
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftpSource {
    pub host: String,
    #[serde(default = "ssh_port")]
    pub port: u16,
    pub user: String,
    /// The server's host key fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`); a server
    /// offering any other key is not logged in to.
    pub host_key: String,
    /// File name of an unencrypted OpenSSH private key in the SFTP key folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Name of an environment variable starting with `TABIJI_SFTP_` that holds the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The folder on the server, absolute or relative to the login's home.
    pub path: String,
    pub pattern: String,
}

impl Source {
    /// Where the files come from, for the history of a fetch that failed before reading one:
    /// the folder, or `sftp://user@host:port/folder`; empty for uploads.
    pub fn place(&self) -> String {
        match self {
            Source::Upload => String::new(),
            Source::Directory { path, .. } => path.clone(),
            Source::Sftp(sftp) => sftp.login().place(),
            Source::Http(http) => http.url.clone(),
        }
    }
}

/// Prefix of the environment variables an SFTP source may read its password from, so a flow
/// cannot name the process's other secrets.
pub const SFTP_PASSWORD_ENV_PREFIX: &str = "TABIJI_SFTP_";

pub(crate) fn ssh_port() -> u16 {
    22
}

impl SftpSource {
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

/// The login and folder of an SFTP source or destination.
#[derive(Debug, Clone, Copy)]
pub struct SftpLogin<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub host_key: &'a str,
    pub key: Option<&'a str>,
    pub password_env: Option<&'a str>,
    pub path: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileFormat {
    /// `csv` (default) or `xlsx` (an Excel workbook; `encoding` and `delimiter` do not apply).
    #[serde(default)]
    pub kind: FileKind,
    /// XLSX: the sheet to read; the first when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    #[serde(default)]
    pub encoding: Encoding,
    /// One character: `,` (default), `\t`, `;`; `|` only in UTF-8 files.
    #[serde(default = "comma")]
    pub delimiter: String,
    /// The first line names the columns; without it, columns are named by number from 1.
    #[serde(default = "yes")]
    pub header: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    #[default]
    Csv,
    Xlsx,
}

impl Default for FileFormat {
    fn default() -> Self {
        FileFormat {
            kind: FileKind::Csv,
            sheet: None,
            encoding: Encoding::Auto,
            delimiter: comma(),
            header: true,
        }
    }
}

fn comma() -> String {
    ",".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// UTF-8 when the file has a UTF-8 byte-order mark or reads as UTF-8; otherwise Shift_JIS.
    #[default]
    Auto,
    #[serde(rename = "utf-8")]
    Utf8,
    /// Shift_JIS as Windows writes it (CP932), with its extra characters such as ① and ㈱.
    ShiftJis,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Auto => "auto",
            Encoding::Utf8 => "utf-8",
            Encoding::ShiftJis => "shift_jis",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    /// The column's name in the header line (compared after full-width folding and trimming),
    /// or its number from 1 when the file has no header.
    pub column: String,
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<Convert>,
    /// A code table: the cell must be one of its keys (or empty) and is stored as the value.
    /// A code not in the table rejects the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Convert {
    /// A number such as 45292 is an Excel serial date (days since 1899-12-30); written dates
    /// pass through.
    ExcelDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Create the record, or update the one whose `key` field has the row's value; rows with
    /// the same key in one file are merged, later cells winning.
    Upsert { key: String },
    /// Add rows (history, point ledger); a row whose `unique_by` fields all equal a stored
    /// row's is already there and is skipped, so the same file imported twice adds nothing.
    /// Point-ledger rows are kept once per (source_system, transaction_id) by the ledger itself.
    Append {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unique_by: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteWhen {
    pub column: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The reference field to fill, e.g. `tourist_id`.
    pub field: String,
    /// The referenced entity's unique field to look the record up by, e.g. `email`.
    pub by: String,
    /// The column holding that value.
    pub column: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmptyCells {
    #[default]
    Keep,
    Clear,
}

/// One problem with an import flow; `at` names the part (`columns[2]`, `action.key` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportFlowError {
    pub at: String,
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for ImportFlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.at, self.message, self.code)
    }
}

fn err(at: impl Into<String>, code: &'static str, message: impl Into<String>) -> ImportFlowError {
    ImportFlowError {
        at: at.into(),
        code,
        message: message.into(),
    }
}

/// Header names are compared as people read them: full-width folded, trimmed.
pub fn column_name(text: &str) -> String {
    nfkc_cow(text.trim_start_matches('\u{feff}'))
        .trim()
        .to_string()
}

impl ImportFlow {
    /// The delimiter as a byte, once [`ImportFlow::check`] accepted it.
    pub fn delimiter(&self) -> u8 {
        match self.file.delimiter.as_str() {
            "\\t" => b'\t',
            other => other.bytes().next().unwrap_or(b','),
        }
    }

    /// The schedule, when the flow has one.
    pub fn schedule(&self) -> Option<Result<Schedule, String>> {
        schedule_of(self.cron.as_deref(), self.recurrence.as_ref())
    }

    pub fn zone(&self) -> Option<Zone> {
        Zone::parse(&self.zone)
    }

    /// Every problem with the flow against the schema of its entity (and, for a link, of
    /// the referenced entity), before any file is read.
    pub fn check<'a>(
        &self,
        entity: impl Fn(&str) -> Option<&'a EntitySchema>,
    ) -> Vec<ImportFlowError> {
        let mut errors = Vec::new();
        if self.format != FORMAT_VERSION {
            errors.push(err(
                "format",
                "unknown_format",
                format!(
                    "format {} is not known; this tabiji reads import-flow format {FORMAT_VERSION}",
                    self.format
                ),
            ));
        }
        let name = self.name.trim().chars().count();
        if !(1..=200).contains(&name) {
            errors.push(err(
                "name",
                "invalid_name",
                "give a name of 1 to 200 characters",
            ));
        }
        self.check_file(&mut errors);
        self.check_source(&mut errors);
        let Some(schema) = entity(&self.entity) else {
            errors.push(err(
                "entity",
                "unknown_entity",
                format!("there is no entity called {:?}", self.entity),
            ));
            return errors;
        };
        if self.columns.is_empty() {
            errors.push(err(
                "columns",
                "no_columns",
                "map at least one column to a field",
            ));
        }
        let mut fields_seen = BTreeSet::new();
        for (i, column) in self.columns.iter().enumerate() {
            let at = format!("columns[{i}]");
            self.check_column_name(&column.column, &format!("{at}.column"), &mut errors);
            if !fields_seen.insert(column.field.as_str()) {
                errors.push(err(
                    format!("{at}.field"),
                    "duplicate_field",
                    format!("{} is filled by an earlier column too", column.field),
                ));
            }
            if self.link.as_ref().is_some_and(|l| l.field == column.field) {
                errors.push(err(
                    format!("{at}.field"),
                    "linked_field",
                    format!(
                        "{} is filled by the link; map the column there",
                        column.field
                    ),
                ));
            }
            match writable(schema, &column.field) {
                Err(message) => errors.push(err(format!("{at}.field"), "unknown_field", message)),
                Ok(field) => {
                    if column.convert == Some(Convert::ExcelDate)
                        && !matches!(field.ty, FieldType::Date | FieldType::Timestamp)
                    {
                        errors.push(err(
                            format!("{at}.convert"),
                            "invalid_convert",
                            format!(
                                "excel_date needs a date or time field; {} is not",
                                field.key
                            ),
                        ));
                    }
                }
            }
            if column.codes.as_ref().is_some_and(BTreeMap::is_empty) {
                errors.push(err(
                    format!("{at}.codes"),
                    "empty_codes",
                    "a code table needs at least one code",
                ));
            }
        }
        for key in self.constants.keys() {
            let at = format!("constants.{key}");
            if let Err(message) = writable(schema, key) {
                errors.push(err(&at, "unknown_field", message));
            }
            if fields_seen.contains(key.as_str())
                || self.link.as_ref().is_some_and(|l| &l.field == key)
            {
                errors.push(err(
                    at,
                    "duplicate_field",
                    format!("{key} is filled by a column or the link too"),
                ));
            }
        }
        match &self.action {
            Action::Upsert { key } => {
                match schema.field(key) {
                    Some(field) if field.unique => {}
                    Some(_) => errors.push(err(
                        "action.key",
                        "key_not_unique",
                        format!(
                            "{key} is not a unique field of {}, so it cannot find one record",
                            schema.name
                        ),
                    )),
                    None => errors.push(err(
                        "action.key",
                        "unknown_field",
                        format!("{} has no field called {key}", schema.name),
                    )),
                }
                if !self.columns.iter().any(|c| &c.field == key) {
                    errors.push(err(
                        "action.key",
                        "key_not_mapped",
                        format!("map a column to {key}: rows are matched by it"),
                    ));
                }
                if schema.append_only || schema.kind == EntityKind::PointLedger {
                    errors.push(err(
                        "action",
                        "append_only",
                        format!("{} is never edited; use an append action", schema.name),
                    ));
                }
            }
            Action::Append { unique_by } => {
                let ledger = schema.kind == EntityKind::PointLedger;
                if unique_by.is_empty() && !ledger {
                    errors.push(err(
                        "action.unique_by",
                        "no_unique_by",
                        "name the fields that tell one row from another (such as a ticket or \
                         survey answer id), so importing the same file twice adds nothing",
                    ));
                }
                for (i, key) in unique_by.iter().enumerate() {
                    let mapped = self.columns.iter().any(|c| &c.field == key)
                        || self.constants.contains_key(key)
                        || self.link.as_ref().is_some_and(|l| &l.field == key);
                    if !mapped {
                        errors.push(err(
                            format!("action.unique_by[{i}]"),
                            "unique_by_not_mapped",
                            format!("{key} is not filled by any column or the link"),
                        ));
                    }
                }
                if self.delete_when.is_some() {
                    errors.push(err(
                        "delete_when",
                        "delete_needs_upsert",
                        "rows can delete records only in an upsert flow, which matches them by key",
                    ));
                }
            }
        }
        if let Some(delete) = &self.delete_when {
            self.check_column_name(&delete.column, "delete_when.column", &mut errors);
            if delete.values.is_empty() {
                errors.push(err(
                    "delete_when.values",
                    "no_values",
                    "give the values that mark a row as a deletion, such as D or 削除",
                ));
            }
        }
        if let Some(link) = &self.link {
            self.check_column_name(&link.column, "link.column", &mut errors);
            match schema.field(&link.field).map(|f| &f.ty) {
                Some(FieldType::Reference { entity: target }) => match entity(target) {
                    Some(target_schema) => match target_schema.field(&link.by) {
                        Some(by) if by.unique => {}
                        Some(_) => errors.push(err(
                            "link.by",
                            "key_not_unique",
                            format!("{} is not a unique field of {target}", link.by),
                        )),
                        None => errors.push(err(
                            "link.by",
                            "unknown_field",
                            format!("{target} has no field called {}", link.by),
                        )),
                    },
                    None => errors.push(err(
                        "link.field",
                        "unknown_entity",
                        format!("{target} is not an entity"),
                    )),
                },
                Some(_) => errors.push(err(
                    "link.field",
                    "not_a_reference",
                    format!("{} does not refer to another record", link.field),
                )),
                None => errors.push(err(
                    "link.field",
                    "unknown_field",
                    format!("{} has no field called {}", schema.name, link.field),
                )),
            }
        }
        errors
    }

    fn check_file(&self, errors: &mut Vec<ImportFlowError>) {
        let delimiter = self.file.delimiter.as_str();
        let ok = delimiter == "\\t"
            || (delimiter.len() == 1
                && delimiter
                    .bytes()
                    .all(|b| b.is_ascii() && !matches!(b, b'"' | b'\r' | b'\n')));
        if !ok {
            errors.push(err(
                "file.delimiter",
                "invalid_delimiter",
                "give one ASCII character such as , or ; (\\t for a tab); not a quote or line break",
            ));
        } else if self.file.kind == FileKind::Csv
            && self.file.encoding != Encoding::Utf8
            && (0x40..=0x7e).contains(&self.delimiter())
        {
            // Shift_JIS characters such as ポ (83 7C) end in these bytes.
            errors.push(err(
                "file.delimiter",
                "delimiter_in_shift_jis",
                format!(
                    "{delimiter} can be part of a Shift_JIS character; use , ; or \\t, or set file.encoding to utf-8"
                ),
            ));
        }
    }

    fn check_source(&self, errors: &mut Vec<ImportFlowError>) {
        if let Some(Err(message)) = self.schedule() {
            errors.push(err("cron", "invalid_schedule", message));
        }
        if self.zone().is_none() {
            errors.push(err(
                "zone",
                "unknown_zone",
                format!("{:?} is not a time zone such as Asia/Tokyo", self.zone),
            ));
        }
        match &self.source {
            Source::Upload => {}
            Source::Directory { path, pattern } => {
                if !path.starts_with('/') {
                    errors.push(err(
                        "source.path",
                        "relative_path",
                        "give the folder as an absolute path such as /srv/partners/ota",
                    ));
                }
                check_pattern(pattern, errors);
                if self.schedule().is_none() {
                    errors.push(err(
                        "cron",
                        "no_schedule",
                        "a directory source needs a schedule (cron or recurrence)",
                    ));
                }
            }
            Source::Sftp(sftp) => {
                sftp.login().check("source", errors);
                check_pattern(&sftp.pattern, errors);
                if self.schedule().is_none() {
                    errors.push(err(
                        "cron",
                        "no_schedule",
                        "an SFTP source needs a schedule (cron or recurrence)",
                    ));
                }
            }
            Source::Http(http) => {
                http.check(errors);
                if self.schedule().is_none() {
                    errors.push(err(
                        "cron",
                        "no_schedule",
                        "an HTTP source needs a schedule (cron or recurrence)",
                    ));
                }
            }
        }
    }

    fn check_column_name(&self, column: &str, at: &str, errors: &mut Vec<ImportFlowError>) {
        if self.file.header {
            if column.trim().is_empty() {
                errors.push(err(
                    at,
                    "empty_column",
                    "name the column as in the header line",
                ));
            }
        } else if column
            .parse::<usize>()
            .map_or(true, |n| n == 0 || n.to_string() != column)
        {
            errors.push(err(
                at,
                "column_number",
                "the file has no header: give the column's number, counting from 1",
            ));
        }
    }
}

fn writable<'a>(schema: &'a EntitySchema, key: &str) -> Result<&'a crate::FieldDef, String> {
    if SYSTEM_FIELDS.contains(&key) {
        return Err(format!("{key} is kept by tabiji and cannot be imported"));
    }
    match schema.field(key) {
        None => Err(format!("{} has no field called {key}", schema.name)),
        Some(field) if field.read_only => {
            Err(format!("{key} is kept by tabiji and cannot be imported"))
        }
        Some(field) => Ok(field),
    }
}

/// Whether a file name matches a pattern of `*` (any run of characters) and `?` (one
/// character); the rest must be equal.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point: linear for patterns with one `*`, and never
    // exponential.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// A cell after the column's code table and conversion, as field parsing reads it; the
/// error says what was wrong with the cell.
pub fn convert_cell(column: &ColumnMap, cell: &str) -> Result<String, String> {
    let mut value = cell.trim().to_string();
    if value.is_empty() {
        return Ok(value);
    }
    if let Some(codes) = &column.codes {
        let folded = nfkc_cow(&value);
        // Codes are compared folded on both sides: a table written with １ matches 1.
        let found = codes
            .iter()
            .find(|(code, _)| nfkc_cow(code.trim()) == folded);
        match found {
            Some((_, mapped)) => value = mapped.clone(),
            None => {
                return Err(format!(
                    "{value:?} is not a known code; the table has {}",
                    codes.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    if column.convert == Some(Convert::ExcelDate) {
        value = excel_date(&value)?;
    }
    Ok(value)
}

/// An Excel serial day number (1900 date system, days since 1899-12-30, with a fraction for
/// the time of day) as `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`; anything else passes through for
/// the field to parse.
pub fn excel_date(value: &str) -> Result<String, String> {
    let folded = nfkc_cow(value);
    let Ok(serial) = folded.parse::<f64>() else {
        return Ok(value.to_string());
    };
    if !(1.0..2_958_466.0).contains(&serial) {
        return Err(format!("{value} is not an Excel date (1 to 2958465)"));
    }
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30).expect("a valid date");
    let day = epoch + Duration::days(serial.trunc() as i64);
    let seconds = ((serial.fract()) * 86_400.0).round() as i64;
    if seconds == 0 {
        return Ok(day.to_string());
    }
    let time = day.and_hms_opt(0, 0, 0).expect("midnight exists") + Duration::seconds(seconds);
    Ok(time.format("%Y-%m-%dT%H:%M:%S").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn entity(name: &str) -> Option<&'static EntitySchema> {
        static ALL: std::sync::OnceLock<Vec<EntitySchema>> = std::sync::OnceLock::new();
        ALL.get_or_init(schema::builtin)
            .iter()
            .find(|s| s.name == name)
    }

    fn flow(json: serde_json::Value) -> ImportFlow {
        serde_json::from_value(json).expect("the flow parses")
    }

    fn codes(flow: &ImportFlow) -> Vec<(String, &'static str)> {
        flow.check(entity)
            .into_iter()
            .map(|e| (e.at, e.code))
            .collect()
    }

    fn users() -> serde_json::Value {
        serde_json::json!({
            "format": 1, "name": "OTA users", "entity": "tourists",
            "columns": [
                {"column": "メールアドレス", "field": "email"},
                {"column": "氏名", "field": "family_name"},
                {"column": "生年月日", "field": "birth_date", "convert": "excel_date"}
            ],
            "action": {"type": "upsert", "key": "email"},
            "delete_when": {"column": "区分", "values": ["D", "削除"]}
        })
    }

    #[test]
    fn a_partner_user_file_flow_is_accepted() {
        assert_eq!(codes(&flow(users())), vec![]);
    }

    #[test]
    fn every_problem_names_its_place() {
        let mut json = users();
        json["columns"][0]["field"] = "id".into();
        json["columns"][1]["field"] = "id".into();
        json["columns"][2]["field"] = "family_name".into();
        json["columns"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"column": "m", "field": "email"}));
        json["action"]["key"] = "family_name".into();
        json["file"] = serde_json::json!({"delimiter": "ab"});
        json["cron"] = "0 25 * * *".into();
        assert_eq!(
            codes(&flow(json)),
            vec![
                ("file.delimiter".into(), "invalid_delimiter"),
                ("cron".into(), "invalid_schedule"),
                ("columns[0].field".into(), "unknown_field"),
                ("columns[1].field".into(), "duplicate_field"),
                ("columns[1].field".into(), "unknown_field"),
                ("columns[2].convert".into(), "invalid_convert"),
                ("action.key".into(), "key_not_unique"),
            ]
        );
    }

    #[test]
    fn append_flows_need_a_row_identity_except_for_the_ledger() {
        let survey = flow(serde_json::json!({
            "format": 1, "name": "points", "entity": "point_ledger",
            "columns": [
                {"column": "取引ID", "field": "transaction_id"},
                {"column": "ポイント", "field": "points"}
            ],
            "constants": {"source_system": "ota", "kind": "grant", "points": "1"},
            "action": {"type": "append"},
            "link": {"field": "tourist_id", "by": "email", "column": "メール"}
        }));
        assert_eq!(
            codes(&survey),
            vec![("constants.points".into(), "duplicate_field")]
        );
        let mut tourists = users();
        tourists["action"] = serde_json::json!({"type": "append"});
        assert_eq!(
            codes(&flow(tourists)),
            vec![
                ("action.unique_by".into(), "no_unique_by"),
                ("delete_when".into(), "delete_needs_upsert"),
            ]
        );
    }

    #[test]
    fn links_go_through_a_unique_field_of_the_referenced_entity() {
        let mut json = serde_json::json!({
            "format": 1, "name": "points", "entity": "point_ledger",
            "columns": [{"column": "取引ID", "field": "transaction_id"}],
            "action": {"type": "append"},
            "link": {"field": "tourist_id", "by": "family_name", "column": "氏名"}
        });
        assert_eq!(
            codes(&flow(json.clone())),
            vec![("link.by".into(), "key_not_unique")]
        );
        json["link"]["field"] = "points".into();
        assert_eq!(
            codes(&flow(json)),
            vec![("link.field".into(), "not_a_reference")]
        );
    }

    #[test]
    fn directory_sources_need_an_absolute_folder_and_a_schedule() {
        let mut json = users();
        json["source"] =
            serde_json::json!({"type": "directory", "path": "in", "pattern": "a/*.csv"});
        assert_eq!(
            codes(&flow(json)),
            vec![
                ("source.path".into(), "relative_path"),
                ("source.pattern".into(), "invalid_pattern"),
                ("cron".into(), "no_schedule"),
            ]
        );
    }

    #[test]
    fn sftp_sources_pin_the_host_key_and_name_credentials_without_holding_them() {
        let mut json = users();
        json["cron"] = "0 3 * * *".into();
        json["source"] = serde_json::json!({
            "type": "sftp", "host": "sftp.ota.example", "user": "tabiji",
            "host_key": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            "key": "ota_ed25519", "path": "/outgoing", "pattern": "users_*.csv"
        });
        let accepted = flow(json.clone());
        assert_eq!(codes(&accepted), vec![]);
        let Source::Sftp(sftp) = &accepted.source else {
            panic!("an SFTP source")
        };
        assert_eq!(sftp.port, 22, "the SSH port unless another is given");
        json["source"]["host_key"] = "ab:cd:ef".into();
        json["source"]["key"] = "../../etc/ssh/ssh_host_ed25519_key".into();
        json["source"]["pattern"] = "*/x".into();
        json.as_object_mut().unwrap().remove("cron");
        assert_eq!(
            codes(&flow(json.clone())),
            vec![
                ("source.host_key".into(), "invalid_host_key"),
                ("source.key".into(), "invalid_key_name"),
                ("source.pattern".into(), "invalid_pattern"),
                ("cron".into(), "no_schedule"),
            ]
        );
        json["cron"] = "0 3 * * *".into();
        json["source"]["host_key"] = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into();
        json["source"]["pattern"] = "*.csv".into();
        json["source"]["password_env"] = "TABIJI_SFTP_OTA".into();
        assert_eq!(
            codes(&flow(json.clone())),
            vec![("source.password_env".into(), "two_credentials")]
        );
        json["source"].as_object_mut().unwrap().remove("key");
        assert_eq!(codes(&flow(json.clone())), vec![]);
        for other in ["DATABASE_URL", "TABIJI_SFTP_", "TABIJI_SFTP_a"] {
            json["source"]["password_env"] = other.into();
            assert_eq!(
                codes(&flow(json.clone())),
                vec![("source.password_env".into(), "invalid_password_env")],
                "{other}"
            );
        }
        json["source"]["password"] = "secret".into();
        assert!(
            serde_json::from_value::<ImportFlow>(json).is_err(),
            "a password in the flow is refused"
        );
    }

    #[test]
    fn http_sources_name_their_secret_headers_by_variable() {
        let mut json = users();
        json["cron"] = "0 3 * * *".into();
        json["source"] = serde_json::json!({
            "type": "http", "url": "https://partner.example:8443/exports/users.csv?day=today",
            "headers": {"Authorization": "TABIJI_HTTP_OTA_AUTHORIZATION"}
        });
        let accepted = flow(json.clone());
        assert_eq!(codes(&accepted), vec![]);
        let Source::Http(http) = &accepted.source else {
            panic!("an HTTP source")
        };
        assert_eq!(http.host(), Some("partner.example:8443"));
        json["source"]["url"] = "ftp://partner.example/x.csv".into();
        json["source"]["headers"] = serde_json::json!({"X Token": "PATH"});
        assert_eq!(
            codes(&flow(json.clone())),
            vec![
                ("source.url".into(), "invalid_url"),
                ("source.headers.X Token".into(), "invalid_header"),
                ("source.headers.X Token".into(), "invalid_header_env"),
            ]
        );
        json["source"]["url"] = "https://user:secret@partner.example/x.csv".into();
        json["source"]["headers"] = serde_json::json!({});
        assert_eq!(
            codes(&flow(json)),
            vec![("source.url".into(), "invalid_url")]
        );
    }

    #[test]
    fn headerless_files_name_columns_by_number() {
        let mut json = users();
        json["file"] = serde_json::json!({"header": false});
        let errors = codes(&flow(json.clone()));
        assert!(errors.contains(&("columns[0].column".into(), "column_number")));
        for (i, column) in ["2", "01", "+3"].iter().enumerate() {
            json["columns"][i]["column"] = serde_json::json!(column);
        }
        let errors = codes(&flow(json));
        assert!(!errors.contains(&("columns[0].column".into(), "column_number")));
        assert!(errors.contains(&("columns[1].column".into(), "column_number")));
        assert!(errors.contains(&("columns[2].column".into(), "column_number")));
    }

    #[test]
    fn shift_jis_files_keep_to_delimiters_no_character_ends_in() {
        let mut json = users();
        json["file"] = serde_json::json!({"delimiter": "|"});
        assert_eq!(
            codes(&flow(json.clone())),
            vec![("file.delimiter".into(), "delimiter_in_shift_jis")]
        );
        json["file"] = serde_json::json!({"delimiter": "|", "encoding": "utf-8"});
        assert_eq!(codes(&flow(json.clone())), vec![]);
        json["file"] = serde_json::json!({"delimiter": "\\t", "encoding": "shift_jis"});
        assert_eq!(codes(&flow(json)), vec![]);
    }

    #[test]
    fn code_tables_map_and_refuse_unknown_codes() {
        let column = ColumnMap {
            column: "性別".into(),
            field: "gender".into(),
            convert: None,
            codes: Some(BTreeMap::from([
                ("1".into(), "male".into()),
                ("2".into(), "female".into()),
            ])),
        };
        assert_eq!(convert_cell(&column, " １ ").unwrap(), "male");
        assert_eq!(convert_cell(&column, "").unwrap(), "");
        let wide = ColumnMap {
            codes: Some(BTreeMap::from([("１".into(), "male".into())])),
            ..column.clone()
        };
        assert_eq!(convert_cell(&wide, "1").unwrap(), "male");
        let refused = convert_cell(&column, "9").unwrap_err();
        assert!(refused.contains("\"9\" is not a known code"), "{refused}");
    }

    #[test]
    fn excel_serial_dates_become_dates_and_written_dates_pass() {
        let column = ColumnMap {
            column: "生年月日".into(),
            field: "birth_date".into(),
            convert: Some(Convert::ExcelDate),
            codes: None,
        };
        assert_eq!(convert_cell(&column, "45292").unwrap(), "2024-01-01");
        assert_eq!(
            convert_cell(&column, "45292.5").unwrap(),
            "2024-01-01T12:00:00"
        );
        assert_eq!(
            convert_cell(&column, "2024年1月5日").unwrap(),
            "2024年1月5日"
        );
        assert!(convert_cell(&column, "-3").is_err());
    }

    #[test]
    fn file_name_patterns() {
        assert!(matches_pattern("users_*.csv", "users_20261129.csv"));
        assert!(matches_pattern("users_*.csv", "users_.csv"));
        assert!(!matches_pattern("users_*.csv", "users_20261129.csv.part"));
        assert!(matches_pattern("会員_????.csv", "会員_1129.csv"));
        assert!(!matches_pattern("会員_????.csv", "会員_11.csv"));
        assert!(matches_pattern("*", "anything"));
        assert!(matches_pattern("a*b*c", "aXXbYYc"));
        assert!(!matches_pattern("a*b*c", "aXXbYY"));
    }

    #[test]
    fn header_names_compare_folded() {
        assert_eq!(column_name("\u{feff} ＥＭＡＩＬ "), "EMAIL");
    }

    mod any_input {
        //! Flows and cells come from users and partners: whatever they hold, checking and
        //! converting end with an answer, never a panic.

        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn any_cell_converts_or_is_refused(
                cell in "\\PC{0,30}",
                number in any::<f64>(),
                excel in any::<bool>(),
                codes in any::<bool>(),
            ) {
                let column = ColumnMap {
                    column: "c".into(),
                    field: "f".into(),
                    convert: excel.then_some(Convert::ExcelDate),
                    codes: codes.then(|| BTreeMap::from([(cell.clone(), "x".into())])),
                };
                let _ = convert_cell(&column, &cell);
                let _ = excel_date(&cell);
                let _ = excel_date(&number.to_string());
            }

            #[test]
            fn flows_with_any_values_are_checked(
                texts in prop::collection::vec("\\PC{0,16}", 12),
                header in any::<bool>(),
                entity in prop::sample::select(vec!["tourists", "point_ledger", "purchases", "nothing"]),
            ) {
                let json = serde_json::json!({
                    "format": 1, "name": texts[0], "entity": entity,
                    "file": {"delimiter": texts[1], "header": header, "encoding": "shift_jis"},
                    "columns": [
                        {"column": texts[2], "field": texts[3], "codes": {texts[4].clone(): texts[5]}},
                        {"column": texts[6], "field": "email", "convert": "excel_date"}
                    ],
                    "action": {"type": "upsert", "key": texts[7]},
                    "delete_when": {"column": texts[8], "values": [texts[9]]},
                    "source": {"type": "http", "url": texts[10],
                               "headers": {texts[11].clone(): texts[11]}},
                    "cron": texts[10], "zone": texts[11]
                });
                if let Ok(flow) = serde_json::from_value::<ImportFlow>(json) {
                    let _ = flow.check(entity_of);
                }
            }
        }

        fn entity_of(name: &str) -> Option<&'static EntitySchema> {
            super::entity(name)
        }
    }
}
