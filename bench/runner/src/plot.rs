//! The PNG chart: one horizontal bar per judged row (the ratio, or for memory the share
//! of the allowed bound), green when the target is met, red when not, with the target
//! drawn as a black tick. Text uses a TTF loaded at run time (DejaVu Sans by default).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use crate::report::Row;

/// Font files tried in order (fonts-dejavu-core, then common alternatives).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn load_font() -> Result<()> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| anyhow!("no TTF font found (apt-get install fonts-dejavu-core)"))?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(path)?.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a usable font"))
}

/// Draws the chart of `rows` (those with a score) to `path`.
pub fn draw(rows: &[Row], title: &str, path: &Path) -> Result<()> {
    load_font()?;
    let judged: Vec<&Row> = rows.iter().filter(|r| r.score.is_some()).collect();
    let count = judged.len().max(1);
    let height = 120 + 30 * count as u32;
    let root = BitMapBackend::new(path, (1500, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let x_max = judged
        .iter()
        .filter_map(|r| r.score)
        .flat_map(|s| [s.value, s.target])
        .filter(|v| v.is_finite())
        .fold(1.5f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(600)
        .build_cartesian_2d(0f64..x_max, 0f64..count as f64)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .y_labels(0)
        .x_desc("Shoal / memcached (memory rows: Shoal peak RSS / allowed bound)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (index, row) in judged.iter().enumerate() {
        let score = row.score.expect("filtered");
        let top = (count - index) as f64 - 0.15;
        let bottom = (count - index - 1) as f64 + 0.15;
        let colour = if score.met() {
            RGBColor(46, 160, 67)
        } else {
            RGBColor(214, 39, 40)
        };
        let value = if score.value.is_finite() {
            score.value.min(x_max)
        } else {
            0.0
        };
        chart
            .draw_series([Rectangle::new(
                [(0.0, bottom), (value, top)],
                colour.filled(),
            )])
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series([PathElement::new(
                vec![(score.target, bottom - 0.1), (score.target, top + 0.1)],
                BLACK.stroke_width(3),
            )])
            .map_err(|e| anyhow!("{e}"))?;
        let sign = if score.lower_is_better { "<=" } else { ">=" };
        let label = format!(
            "{}: {}  [{:.2}, {sign} {:.2}]",
            row.id, row.metric, score.value, score.target
        );
        let (x, y) = chart.backend_coord(&(0.0, (top + bottom) / 2.0));
        root.draw(&Text::new(
            label,
            (x - 8, y),
            ("sans-serif", 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(|e| anyhow!("{e}"))?;
    }
    root.present()
        .map_err(|e| anyhow!("{e}"))
        .context("cannot write the PNG")?;
    Ok(())
}
