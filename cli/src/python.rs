//! Python frames of a trace: the code objects the recorder described, and
//! CPython's line tables, which turn an instruction offset into a line.

use crate::symbolize::{Frame, Language};
use leakhunt_format::PyCode;

/// The line of instruction `offset` (in code units) of `code`, or `None`
/// when the table says the instruction has no line (or is cut short).
pub fn line_of(code: &PyCode, offset: u64) -> Option<u32> {
    match code.linetable_format {
        3 => locations_line(&code.linetable, code.first_line, offset),
        _ => None,
    }
}

/// CPython 3.11+'s location table (`Objects/locations.md`): entries of one
/// start byte `1cccclll` (code `cccc`, `lll` + 1 code units) and a payload
/// whose shape the code gives; only the line is followed here.
fn locations_line(table: &[u8], first_line: u32, offset: u64) -> Option<u32> {
    let mut pos = 0usize;
    let mut line = first_line as i64;
    let mut addr = 0u64;
    while pos < table.len() {
        let head = table[pos];
        if head & 0x80 == 0 {
            // Not at an entry start: a damaged table.
            return None;
        }
        pos += 1;
        let code = (head >> 3) & 0x0f;
        let len = (head & 7) as u64 + 1;
        let this_line = match code {
            15 => None,
            14 => {
                line += svarint(table, &mut pos)?;
                varint(table, &mut pos)?; // end line delta
                varint(table, &mut pos)?; // column + 1
                varint(table, &mut pos)?; // end column + 1
                Some(line)
            }
            13 => {
                line += svarint(table, &mut pos)?;
                Some(line)
            }
            10..=12 => {
                line += (code - 10) as i64;
                pos += 2;
                Some(line)
            }
            _ => {
                pos += 1;
                Some(line)
            }
        };
        if offset < addr + len {
            return this_line.and_then(|l| u32::try_from(l).ok());
        }
        addr += len;
    }
    None
}

fn varint(t: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *t.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x3f) as u64) << shift;
        if b & 0x40 == 0 {
            return Some(v);
        }
        shift += 6;
        if shift > 60 {
            return None;
        }
    }
}

fn svarint(t: &[u8], pos: &mut usize) -> Option<i64> {
    let v = varint(t, pos)?;
    Some(if v & 1 != 0 {
        -((v >> 1) as i64)
    } else {
        (v >> 1) as i64
    })
}

/// The frame for a Python stack entry (`code` is `None` when the trace
/// never described it).
pub fn frame(code: Option<&PyCode>, offset: u64) -> Frame {
    Frame {
        function: Some(code.map_or_else(|| "<python>".into(), |c| c.name.as_str().into())),
        linkage_name: None,
        file: code.map(|c| c.file.as_str().into()),
        line: code.and_then(|c| line_of(c, offset)),
        module: "".into(),
        address: 0,
        offset,
        inlined: false,
        language: Language::Python,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(table: Vec<u8>, first_line: u32) -> PyCode {
        PyCode {
            id: 1,
            name: "f".into(),
            file: "a.py".into(),
            first_line,
            linetable_format: 3,
            linetable: table,
        }
    }

    #[test]
    fn lines_follow_the_location_table() {
        // CPython 3.11.7, `f.__code__.co_linetable` of
        // `def f():\n    x = []\n    x.append(1)\n    return x` defined on line 2;
        // `co_lines()` says units 0 -> 2, 1-2 -> 3, 3-23 -> 4, 24-25 -> 5.
        let c = code(
            vec![
                128, 0, 216, 8, 10, 128, 65, 216, 4, 5, 135, 72, 130, 72, 136, 81, 129, 75, 132,
                75, 128, 75, 216, 11, 12, 128, 72,
            ],
            2,
        );
        let want = |u: u64| match u {
            0 => 2,
            1..=2 => 3,
            3..=23 => 4,
            _ => 5,
        };
        for u in 0..26 {
            assert_eq!(line_of(&c, u), Some(want(u)), "unit {u}");
        }
        // Past the end: unknown, never a wrong line.
        assert_eq!(line_of(&c, 26), None);
    }

    #[test]
    fn long_and_no_location_forms() {
        // 14: long form, line +3; 15: no location; 13: no columns, line -1.
        let c = code(
            vec![
                0x80 | 14 << 3,
                6,
                0,
                1,
                1,
                0x80 | 15 << 3,
                0x80 | 13 << 3,
                3,
            ],
            10,
        );
        assert_eq!(line_of(&c, 0), Some(13));
        assert_eq!(line_of(&c, 1), None);
        assert_eq!(line_of(&c, 2), Some(12));
    }

    #[test]
    fn damaged_tables_give_no_line() {
        assert_eq!(line_of(&code(vec![0x01, 0x02], 1), 0), None);
        assert_eq!(line_of(&code(vec![0x80 | 14 << 3, 0x7f], 1), 0), None);
    }
}
