//! A dashboard's widgets as the arranger changes them (CF-8), without a browser: added,
//! moved (dragged or by keys), resized on the 12-column grid, retitled, removed; and the body
//! that saves them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Columns of the dashboard grid; a widget spans 1 to all of them.
pub const COLUMNS: u8 = 12;
/// Widgets a dashboard holds at most, as the server allows.
pub const MAX_WIDGETS: usize = 24;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Widget {
    pub report: String,
    pub width: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// The widgets of a dashboard as the server gives it.
pub fn widgets_of(dashboard: &Value) -> Vec<Widget> {
    serde_json::from_value(dashboard["widgets"].clone()).unwrap_or_default()
}

/// Adds a widget for `report` at the end, half the grid wide; false when the dashboard is full.
pub fn add(widgets: &mut Vec<Widget>, report: &str) -> bool {
    if widgets.len() >= MAX_WIDGETS || report.is_empty() {
        return false;
    }
    widgets.push(Widget {
        report: report.to_string(),
        width: COLUMNS / 2,
        title: None,
    });
    true
}

/// Moves the widget at `from` so that it lands where the widget at `to` was (a drop on it).
pub fn shift(widgets: &mut Vec<Widget>, from: usize, to: usize) {
    if from >= widgets.len() || to >= widgets.len() || from == to {
        return;
    }
    let widget = widgets.remove(from);
    widgets.insert(to, widget);
}

/// Moves the widget at `at` one place earlier (`-1`) or later (`1`).
pub fn step(widgets: &mut Vec<Widget>, at: usize, by: isize) {
    if let Some(to) = at.checked_add_signed(by) {
        shift(widgets, at, to);
    }
}

/// Makes the widget `by` columns wider (or narrower), within the grid.
pub fn widen(widget: &mut Widget, by: i8) {
    widget.width = widget.width.saturating_add_signed(by).clamp(1, COLUMNS);
}

/// A title typed; an empty one gives the report's name back.
pub fn retitle(widget: &mut Widget, text: &str) {
    let text = text.trim();
    widget.title = (!text.is_empty()).then(|| text.to_string());
}

/// What `PUT /api/dashboards/{key}` takes.
pub fn body(key: &str, name: &str, widgets: &[Widget]) -> Value {
    json!({"key": key, "name": name.trim(), "widgets": widgets})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(reports: &[&str]) -> Vec<Widget> {
        let mut widgets = Vec::new();
        for r in reports {
            assert!(add(&mut widgets, r));
        }
        widgets
    }

    fn order(widgets: &[Widget]) -> Vec<&str> {
        widgets.iter().map(|w| w.report.as_str()).collect()
    }

    #[test]
    fn widgets_move_where_they_are_dropped_or_stepped() {
        let mut widgets = board(&["a", "b", "c", "d"]);
        shift(&mut widgets, 0, 2);
        assert_eq!(order(&widgets), ["b", "c", "a", "d"]);
        shift(&mut widgets, 3, 0);
        assert_eq!(order(&widgets), ["d", "b", "c", "a"]);
        step(&mut widgets, 0, -1);
        step(&mut widgets, 3, 1);
        assert_eq!(order(&widgets), ["d", "b", "c", "a"]);
        step(&mut widgets, 1, 1);
        assert_eq!(order(&widgets), ["d", "c", "b", "a"]);
        shift(&mut widgets, 9, 0);
        assert_eq!(order(&widgets), ["d", "c", "b", "a"]);
    }

    #[test]
    fn widths_stay_on_the_grid_and_the_board_stays_within_its_limit() {
        let mut widgets = board(&["a"]);
        assert_eq!(widgets[0].width, 6);
        widen(&mut widgets[0], 10);
        assert_eq!(widgets[0].width, 12);
        widen(&mut widgets[0], -20);
        assert_eq!(widgets[0].width, 1);
        let mut full = board(&["r"; MAX_WIDGETS]);
        assert!(!add(&mut full, "one_more"));
        assert!(!add(&mut widgets, ""));
    }

    #[test]
    fn the_saved_body_holds_titles_only_where_typed() {
        let mut widgets = board(&["sales", "opens"]);
        retitle(&mut widgets[0], " 月別売上 ");
        retitle(&mut widgets[1], "  ");
        let saved = body("home", " ホーム ", &widgets);
        assert_eq!(
            saved,
            json!({"key": "home", "name": "ホーム", "widgets": [
                {"report": "sales", "width": 6, "title": "月別売上"},
                {"report": "opens", "width": 6}]})
        );
        assert_eq!(widgets_of(&saved), widgets);
    }
}
