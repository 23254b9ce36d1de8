//! A report's rows turned into what its chart draws, pure: categories and series, a scale with
//! round ticks, bars, line points, pie slices and funnel steps, in the chart's own units (the
//! SVG's view box), so the drawing code only places shapes.

use serde_json::Value;

/// The view box every chart is drawn in.
pub const WIDTH: f64 = 600.0;
pub const HEIGHT: f64 = 300.0;
/// Room for the value axis on the left and the category labels below.
pub const LEFT: f64 = 56.0;
pub const BOTTOM: f64 = 40.0;
pub const TOP: f64 = 10.0;

/// A report's data as the chart reads it: one label per row (its dimensions joined) and one
/// series per measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub labels: Vec<String>,
    pub series: Vec<(String, Vec<f64>)>,
}

/// The column names a report's data lists under `key` (`dimensions` or `measures`).
pub fn names(data: &Value, key: &str) -> Vec<String> {
    data[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Reads `{"dimensions": [..], "measures": [..], "rows": [{..}]}` as the API answers a report.
pub fn table_of(data: &Value) -> Table {
    let (dimensions, measures) = (names(data, "dimensions"), names(data, "measures"));
    let rows = data["rows"].as_array().cloned().unwrap_or_default();
    let labels = rows
        .iter()
        .map(|row| {
            dimensions
                .iter()
                .map(|d| text(&row[d.as_str()]))
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .collect();
    let series = measures
        .into_iter()
        .map(|m| {
            let values = rows.iter().map(|row| number(&row[m.as_str()])).collect();
            (m, values)
        })
        .collect();
    Table { labels, series }
}

/// A cell as text: empty for null (a row without a value for that dimension shows as `—`).
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The smallest of 1, 2 or 5 × 10ⁿ at or above `max`, so the axis ends on a round number.
pub fn round_up(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * power)
        .find(|top| *top >= max * (1.0 - 1e-12))
        .unwrap_or(10.0 * power)
}

/// Five ticks from 0 to the axis' top.
pub fn ticks(top: f64) -> Vec<f64> {
    (0..=4).map(|i| top * f64::from(i) / 4.0).collect()
}

/// The top of the value axis for all series: four round steps (1, 2 or 5 × 10ⁿ each), so
/// counts get whole ticks.
pub fn top_of(table: &Table) -> f64 {
    let max = table
        .series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .fold(0.0, f64::max);
    round_up(max / 4.0) * 4.0
}

/// Where a value sits on the value axis.
pub fn y_of(value: f64, top: f64) -> f64 {
    let plot = HEIGHT - BOTTOM - TOP;
    HEIGHT - BOTTOM - plot * (value.max(0.0) / top)
}

/// One rectangle of a bar or funnel chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// Which series (measure) it belongs to.
    pub series: usize,
    pub value: f64,
}

/// Grouped bars: for each category, one bar per series side by side.
pub fn bars(table: &Table, top: f64) -> Vec<Bar> {
    let n = table.labels.len().max(1) as f64;
    let per_group = table.series.len().max(1) as f64;
    let slot = (WIDTH - LEFT) / n;
    let bar_width = slot * 0.8 / per_group;
    let mut out = Vec::new();
    for (s, (_, values)) in table.series.iter().enumerate() {
        for (i, &value) in values.iter().enumerate() {
            let y = y_of(value, top);
            out.push(Bar {
                x: LEFT + slot * i as f64 + slot * 0.1 + bar_width * s as f64,
                y,
                width: bar_width,
                height: HEIGHT - BOTTOM - y,
                series: s,
                value,
            });
        }
    }
    out
}

/// The middle of category `i` on the category axis.
pub fn x_of(i: usize, count: usize) -> f64 {
    let slot = (WIDTH - LEFT) / count.max(1) as f64;
    LEFT + slot * (i as f64 + 0.5)
}

/// A series as the `points` of an SVG polyline.
pub fn line_points(values: &[f64], top: f64) -> String {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| format!("{:.1},{:.1}", x_of(i, values.len()), y_of(v, top)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A slice of a pie: its SVG path and its share of the whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub path: String,
    pub share: f64,
}

/// The slices of a pie of radius `r` around (`cx`, `cy`), clockwise from twelve o'clock.
/// Negative values count as nothing; a single slice is a full circle.
pub fn slices(values: &[f64], cx: f64, cy: f64, r: f64) -> Vec<Slice> {
    let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let point = |turn: f64| {
        let angle = turn * std::f64::consts::TAU - std::f64::consts::FRAC_PI_2;
        (cx + r * angle.cos(), cy + r * angle.sin())
    };
    let mut start = 0.0;
    values
        .iter()
        .map(|v| {
            let share = v.max(0.0) / total;
            let path = if share >= 1.0 - 1e-9 {
                format!(
                    "M {cx:.1} {:.1} A {r} {r} 0 1 1 {cx:.1} {:.1} A {r} {r} 0 1 1 {cx:.1} {:.1} Z",
                    cy - r,
                    cy + r,
                    cy - r
                )
            } else {
                let (x0, y0) = point(start);
                let (x1, y1) = point(start + share);
                let large = if share > 0.5 { 1 } else { 0 };
                format!(
                    "M {cx:.1} {cy:.1} L {x0:.1} {y0:.1} A {r} {r} 0 {large} 1 {x1:.1} {y1:.1} Z"
                )
            };
            start += share;
            Slice { path, share }
        })
        .collect()
}

/// A funnel's steps: the measures of the first row, each a bar centred under the one before,
/// as wide as its share of the first step.
pub fn funnel(table: &Table) -> Vec<Bar> {
    let values: Vec<f64> = table
        .series
        .iter()
        .map(|(_, v)| v.first().copied().unwrap_or(0.0))
        .collect();
    let first = values
        .first()
        .copied()
        .unwrap_or(0.0)
        .max(f64::MIN_POSITIVE);
    let step = (HEIGHT - TOP) / values.len().max(1) as f64;
    let room = WIDTH - LEFT * 2.0;
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| {
            let width = room * (value.max(0.0) / first).min(1.0);
            Bar {
                x: LEFT + (room - width) / 2.0,
                y: TOP + step * i as f64,
                width,
                height: step * 0.8,
                series: i,
                value,
            }
        })
        .collect()
}

/// A value as the chart labels it: whole numbers grouped, rates as they came.
pub fn value_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        crate::record::grouped(value as i64)
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({"chart": "bar", "dimensions": ["prefecture"], "measures": ["count", "sum_amount"],
               "rows": [{"prefecture": "愛知県", "count": 3, "sum_amount": 5400},
                        {"prefecture": null, "count": 1, "sum_amount": 800}]})
    }

    #[test]
    fn rows_become_labels_and_series() {
        let table = table_of(&data());
        assert_eq!(table.labels, vec!["愛知県", "—"]);
        assert_eq!(
            table.series,
            vec![
                ("count".to_string(), vec![3.0, 1.0]),
                ("sum_amount".to_string(), vec![5400.0, 800.0])
            ]
        );
        let two = json!({"dimensions": ["a", "b"], "measures": ["n"], "rows": [{"a": "x", "b": 2, "n": "7"}]});
        let table = table_of(&two);
        assert_eq!(table.labels, vec!["x / 2"]);
        assert_eq!(table.series[0].1, vec![7.0]);
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(round_up(5400.0), 10_000.0);
        assert_eq!(round_up(3.0), 5.0);
        assert_eq!(round_up(0.37), 0.5);
        assert_eq!(round_up(100.0), 100.0);
        assert_eq!(round_up(0.0), 1.0);
        assert_eq!(ticks(10.0), vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        let counts = Table {
            labels: vec!["a".into()],
            series: vec![("n".into(), vec![3.0])],
        };
        assert_eq!(ticks(top_of(&counts)), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(top_of(&table_of(&data())), 8000.0);
    }

    #[test]
    fn bars_stand_on_the_axis_in_proportion() {
        let table = table_of(&data());
        let top = top_of(&table);
        let bars = bars(&table, top);
        assert_eq!(bars.len(), 4);
        let floor = HEIGHT - BOTTOM;
        for bar in &bars {
            assert!((bar.y + bar.height - floor).abs() < 1e-9, "{bar:?}");
        }
        assert!((bars[2].height / bars[3].height - 5400.0 / 800.0).abs() < 1e-9);
        assert!(
            bars[0].x < bars[2].x && bars[2].x < bars[1].x,
            "grouped by category"
        );
    }

    #[test]
    fn slices_share_the_circle() {
        let cut = slices(&[1.0, 3.0], 100.0, 100.0, 50.0);
        assert_eq!(
            cut.iter().map(|s| s.share).collect::<Vec<_>>(),
            vec![0.25, 0.75]
        );
        assert_eq!(
            cut[0].path,
            "M 100.0 100.0 L 100.0 50.0 A 50 50 0 0 1 150.0 100.0 Z"
        );
        assert!(
            cut[1].path.contains(" 0 1 1 "),
            "the larger slice takes the long way"
        );
        assert_eq!(slices(&[2.0], 0.0, 0.0, 1.0).len(), 1);
        assert!(slices(&[0.0, -1.0], 0.0, 0.0, 1.0).is_empty());
    }

    #[test]
    fn funnels_narrow_with_each_step() {
        let table = table_of(
            &json!({"dimensions": [], "measures": ["sent", "opened", "clicked"],
            "rows": [{"sent": 200, "opened": 100, "clicked": 20}]}),
        );
        let steps = funnel(&table);
        assert_eq!(steps.len(), 3);
        assert!((steps[1].width / steps[0].width - 0.5).abs() < 1e-9);
        assert!(
            (steps[0].x + steps[0].width / 2.0 - (steps[2].x + steps[2].width / 2.0)).abs() < 1e-9
        );
        assert_eq!(value_text(1234.0), "1,234");
        assert_eq!(value_text(0.125), "0.125");
        assert_eq!(
            line_points(&[0.0, 5.0], 10.0),
            format!(
                "{:.1},{:.1} {:.1},{:.1}",
                x_of(0, 2),
                HEIGHT - BOTTOM,
                x_of(1, 2),
                y_of(5.0, 10.0)
            )
        );
    }
}
