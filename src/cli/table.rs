//! Compact aligned text tables for the human output of `schema` commands.

/// Renders a header and rows as columns separated by two spaces; the last column is not
/// padded, and empty cells show as `-`.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<&str>> = std::iter::once(header.to_vec())
        .chain(rows.iter().map(|r| r.iter().map(|c| shown(c)).collect()))
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| cells.iter().map(|r| width(r, i)).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &cells {
        out.push_str(&line(row, &widths));
        out.push('\n');
    }
    out
}

fn shown(cell: &str) -> &str {
    match cell.is_empty() {
        true => "-",
        false => cell,
    }
}

fn width(row: &[&str], i: usize) -> usize {
    row.get(i).map_or(0, |c| c.chars().count())
}

fn line(row: &[&str], widths: &[usize]) -> String {
    let mut s = String::new();
    for (i, cell) in row.iter().enumerate() {
        if i + 1 == row.len() {
            s.push_str(cell);
        } else {
            s.push_str(cell);
            s.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let rows = vec![
            vec![
                "boiler".to_string(),
                "temperature".into(),
                "temp, tmp".into(),
            ],
            vec!["pumpé".to_string(), "".into(), "x".into()],
        ];
        assert_eq!(
            render(&["METRIC", "FIELD", "ALIASES"], &rows),
            "METRIC  FIELD        ALIASES\n\
             boiler  temperature  temp, tmp\n\
             pumpé   -            x\n"
        );
    }
}
