//! How answers are printed: a table or lines for people, or JSON (the
//! control API's types, a stable schema) for scripts with `--output json`.

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl Output {
    /// Prints `value` as JSON, or hands it to `text` to print for people.
    pub fn emit<T: Serialize>(self, value: &T, text: impl FnOnce(&T)) {
        match self {
            Output::Json => print_json(value),
            Output::Text => text(value),
        }
    }
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("ferryctl's answers always serialize")
    );
}

/// Prints a left-aligned table, columns as wide as their widest cell.
pub fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{out}");
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}

/// `name: value` lines, the values aligned at column `width` + 1.
pub fn print_rows(width: usize, rows: &[(&str, String)]) {
    for (name, value) in rows {
        println!("{:<width$} {value}", format!("{name}:"));
    }
}

/// Collapses whitespace and newlines: an error is one line on stderr.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
