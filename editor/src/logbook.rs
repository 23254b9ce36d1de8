//! What the access log screen asks and shows, without a browser (CF-3): the search typed into
//! its form as the API's query (days in Asia/Tokyo, the last day included), the link to a
//! logged record's card, and a user agent in a few words.

use chrono::NaiveDate;

use crate::RECORD_SCREENS;
use crate::api::encoded;

/// Actions the log holds, offered while typing.
pub const ACTIONS: [&str; 19] = [
    "view",
    "search",
    "create",
    "edit",
    "delete",
    "export",
    "import",
    "login",
    "second_login",
    "log_off",
    "change_password",
    "update_user",
    "unlock",
    "create_user",
    "create_role",
    "update_role",
    "create_token",
    "revoke_token",
    "export_access_log",
];

/// The search form as typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    pub login: String,
    pub action: String,
    pub entity: String,
    pub record_id: String,
    /// `ok`, `denied` or empty for both.
    pub outcome: String,
    /// First day, `YYYY-MM-DD` (a date input's value), in Asia/Tokyo.
    pub from: String,
    /// Last day, included.
    pub to: String,
}

fn day(text: &str, field: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{field}: a day is written 2026-11-30"))
}

/// The query string of `GET /api/admin/access-log` (and its export) for the search; the page
/// before the entry `before_id` when given.
pub fn query(search: &Search, before_id: Option<i64>) -> Result<String, String> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (key, value) in [
        ("login", &search.login),
        ("action", &search.action),
        ("entity", &search.entity),
        ("outcome", &search.outcome),
    ] {
        if !value.trim().is_empty() {
            pairs.push((key, value.trim().to_string()));
        }
    }
    if !search.record_id.trim().is_empty() {
        let id: i64 = search
            .record_id
            .trim()
            .parse()
            .map_err(|_| "record_id: a record's id is a whole number".to_string())?;
        pairs.push(("record_id", id.to_string()));
    }
    let from = (!search.from.trim().is_empty())
        .then(|| day(&search.from, "from"))
        .transpose()?;
    let to = (!search.to.trim().is_empty())
        .then(|| day(&search.to, "to"))
        .transpose()?;
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        return Err("to: the last day comes before the first".into());
    }
    if let Some(from) = from {
        pairs.push(("from", format!("{from}T00:00:00+09:00")));
    }
    if let Some(to) = to.and_then(|d| d.succ_opt()) {
        pairs.push(("to", format!("{to}T00:00:00+09:00")));
    }
    if let Some(id) = before_id {
        pairs.push(("before_id", id.to_string()));
    }
    Ok(pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encoded(v)))
        .collect::<Vec<_>>()
        .join("&"))
}

/// The card of a logged record, for the entities that have cards.
pub fn record_link(entity: Option<&str>, id: Option<i64>) -> Option<String> {
    let entity = RECORD_SCREENS.into_iter().find(|e| Some(*e) == entity)?;
    Some(format!("#/{entity}/{}", id?))
}

/// A user agent in a few words: the browser and the system it runs on.
pub fn browser_of(agent: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .into_iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} ({s})"),
        (Some(b), None) => b.to_string(),
        _ => agent.chars().take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_becomes_the_query_with_tokyo_days_and_the_last_day_included() {
        let search = Search {
            login: " 受付 ".into(),
            outcome: "denied".into(),
            record_id: "42".into(),
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            ..Search::default()
        };
        assert_eq!(
            query(&search, Some(900)).unwrap(),
            "login=%E5%8F%97%E4%BB%98&outcome=denied&record_id=42\
             &from=2026-11-01T00%3A00%3A00%2B09%3A00&to=2026-12-01T00%3A00%3A00%2B09%3A00&before_id=900"
        );
        assert_eq!(query(&Search::default(), None).unwrap(), "");
    }

    #[test]
    fn searches_that_cannot_be_asked_name_their_field() {
        let refused = |search: Search| query(&search, None).unwrap_err();
        assert!(
            refused(Search {
                record_id: "abc".into(),
                ..Search::default()
            })
            .starts_with("record_id:")
        );
        assert!(
            refused(Search {
                from: "30/11/2026".into(),
                ..Search::default()
            })
            .starts_with("from:")
        );
        assert!(
            refused(Search {
                from: "2026-11-30".into(),
                to: "2026-11-01".into(),
                ..Search::default()
            })
            .starts_with("to:")
        );
    }

    #[test]
    fn records_link_to_their_cards_and_agents_read_short() {
        assert_eq!(
            record_link(Some("tourists"), Some(7)).as_deref(),
            Some("#/tourists/7")
        );
        assert_eq!(record_link(Some("purchases"), Some(7)), None);
        assert_eq!(record_link(Some("tourists"), None), None);
        assert_eq!(
            browser_of(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36"
            ),
            "Chrome (Linux)"
        );
        assert_eq!(
            browser_of(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36 Edg/120"
            ),
            "Edge (Windows)"
        );
        assert_eq!(browser_of("curl/8.5.0"), "curl");
    }
}
