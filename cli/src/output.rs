//! What the tool prints: one place for the conventions every subcommand follows. Results go to
//! `out` (stdout), progress to stderr; `--json` prints one JSON document for scripts; colour only
//! when `out` is a terminal (and `NO_COLOR` is unset).

use std::fmt::Display;
use std::io::Write;

use anstyle::{AnsiColor, Style};
use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// Where and how a subcommand prints.
pub struct Output<'a> {
    writer: &'a mut (dyn Write + Send),
    pub json: bool,
    color: bool,
}

impl<'a> Output<'a> {
    pub fn new(writer: &'a mut (dyn Write + Send), json: bool, color: bool) -> Self {
        Self {
            writer,
            json,
            color,
        }
    }

    /// One line of text.
    pub fn line(&mut self, text: impl Display) {
        let _ = writeln!(self.writer, "{text}");
    }

    /// One JSON document (for `--json`).
    pub fn json_value(&mut self, value: &Value) {
        let _ = writeln!(self.writer, "{value}");
    }

    /// `✓ name  detail` or `✗ name  detail`, green or red on a terminal.
    pub fn check(&mut self, ok: bool, name: &str, detail: impl Display) {
        let (mark, color) = if ok {
            ("✓", AnsiColor::Green)
        } else {
            ("✗", AnsiColor::Red)
        };
        let mark = self.paint(mark, Style::new().fg_color(Some(color.into())).bold());
        self.line(format!("{mark} {name:<30} {detail}"));
    }

    /// A table with a header row, columns aligned, no borders.
    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        let mut table = Table::new();
        table
            .load_preset(NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(
                header
                    .iter()
                    .map(|h| self.paint(&h.to_uppercase(), Style::new().bold())),
            );
        for row in rows {
            table.add_row(row);
        }
        for line in table.lines() {
            // Every line starts with the same one-space cell padding.
            let line = line
                .strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_owned();
            self.line(line);
        }
    }

    fn paint(&self, text: &str, style: Style) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }
}

/// A progress bar on stderr for `len` steps of `what`; drawn only on a terminal.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} ({eta})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}

/// Asks `question` on a terminal; without one, only `--yes` confirms.
pub fn confirm(question: &str, yes: bool) -> Result<(), crate::error::CliError> {
    use std::io::{BufRead, IsTerminal};

    use crate::error::CliError;
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NeedsConfirmation(question.to_owned()));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(CliError::Prompt)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::NotConfirmed),
    }
}
